import os
import pathlib

import pytest
from workflow_runner import REPO, snakemake

os.environ.setdefault("OMP_NUM_THREADS", "2")
INTEGRATION = REPO / "tests" / "integration"


STUDIES = {"tiny_study", "power_study", "crashed_study", "copies", "slurm", "slurm_study", "bids_study"}  # end-to-end fixtures


def pytest_collection_modifyitems(items):
    """Real-SLURM tests (tests/integration) run last, after everything else in the session. A test that
    runs an end-to-end study (one of STUDIES among its fixtures) is `slow`, so `make test-fast`
    (`-m "not slow"`) leaves out every study whatever its module says."""
    items.sort(key=lambda item: pathlib.Path(item.path).is_relative_to(INTEGRATION))
    for item in items:
        if STUDIES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def template_4mm():
    """The simulated head template at 4 mm (dlmi.sim.anatomy.build_template), built once per session."""
    from dlmi.sim import anatomy

    return anatomy.build_template(4.0)


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
