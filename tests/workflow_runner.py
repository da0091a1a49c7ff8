"""Run the workflow with Snakemake in a scratch folder, as a user would, or load one rule script (shared by
tests/unit, tests/workflow and tests/integration; tests/ is on sys.path because tests/conftest.py lives
there)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import yaml

from dlmi_workflow.snakemake_interface import job_counts  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def rule_script(name: str):
    """The rule script scripts/<name>.py as a module (its __main__ block, which needs Snakemake, does not run)."""
    spec = importlib.util.spec_from_file_location(f"rule_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snakemake(workdir: Path, *args: str, configs=(), check: bool = True, env=None):
    """Run snakemake on the repo's workflow in `workdir` with the default config, then `configs` on top.
    `env`: extra environment variables for the run. No time limit: a slower machine takes longer, and a
    hung run is a failure that the CI job's own limit reports."""
    configfiles = [str(REPO / "config" / "config.yaml")]
    for k, extra in enumerate(configs):
        if isinstance(extra, dict):
            path = Path(workdir) / f"extra-config-{k}.yaml"
            path.write_text(yaml.safe_dump(extra))
            extra = path
        configfiles.append(str(extra))
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", *configfiles, *args]
    env = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result
