"""The parsed workflow, as Snakemake's API sees it: dlmi_workflow.snakemake_interface.parse_workflow on the
repo's workflow (kept under this name for this folder's `from parsed import parse_workflow`)."""
from workflow_runner import SNAKEFILE

from dlmi_workflow import snakemake_interface


def parse_workflow(env=None, configfiles=()) -> dict:
    """{"rules": rule name -> {script, conda, library, group, local, threads, resources, output, log, ...},
    "pythonpath": the PYTHONPATH the workflow leaves for its jobs} (see snakemake_interface.parse_workflow),
    of the repo's workflow with its default config and then `configfiles`."""
    return snakemake_interface.parse_workflow(SNAKEFILE, configfiles=configfiles, env=env)
