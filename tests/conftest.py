import os
import pathlib

import pytest
from workflow_runner import REPO, snakemake

os.environ.setdefault("OMP_NUM_THREADS", "2")
INTEGRATION = REPO / "tests" / "integration"


def pytest_collection_modifyitems(items):
    """Real-SLURM tests (tests/integration) run last, after everything else in the session."""
    items.sort(key=lambda item: pathlib.Path(item.path).is_relative_to(INTEGRATION))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One tiny end-to-end study per test session (config/tiny.yaml), with its report."""
    workdir = tmp_path_factory.mktemp("tiny")
    run = snakemake(workdir, "--cores", "2", configs=[REPO / "config" / "tiny.yaml"])
    snakemake(workdir, "--report", "results/report.html", configs=[REPO / "config" / "tiny.yaml"])
    return workdir, run
