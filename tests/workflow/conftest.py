"""The workflow runner and the `tiny_study` fixture moved to tests/workflow_runner.py and tests/conftest.py
(tests/integration uses them too); the names stay importable here for this folder's `from conftest import`."""
from workflow_runner import REPO, SNAKEFILE, SNAKEMAKE, job_counts, snakemake  # noqa: F401
