"""A real single-node SLURM cluster on localhost for the whole session (see slurm_cluster.py).

Without the SLURM and MUNGE programs these tests skip, except in CI (CI=true), where they fail: .ci/run
installs the Debian packages before `make test`.
"""
import os

import pytest
from slurm_cluster import PACKAGES, LocalSlurm, missing_binaries
from workflow_runner import REPO, snakemake  # noqa: F401  (also `from conftest import` in tests/workflow)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """Start munged, slurmctld and slurmd for the session; stop them by PID at its end."""
    missing = missing_binaries()
    if missing:
        message = (f"SLURM/MUNGE programs not found: {', '.join(missing)}; install them with "
                   f"`apt-get install {' '.join(PACKAGES)}` (as root; .ci/run does this in CI)")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()
