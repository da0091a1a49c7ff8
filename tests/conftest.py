import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def repo():
    return REPO
