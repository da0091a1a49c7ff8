"""The parsed workflow, as Snakemake's API sees it: each rule's script, conda env and parameters."""
import json
import subprocess
import sys

from conftest import SNAKEFILE

_CODE = """
import json, os, pathlib
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(),
                      snakefile=pathlib.Path({snakefile!r}), workdir=pathlib.Path.cwd())._workflow
    rules = {{r.name: {{"script": r.script and str((pathlib.Path(r.basedir) / r.script).resolve()),
                        "conda": r.conda_env and str((pathlib.Path(r.basedir) / r.conda_env).resolve()),
                        "library": r.params.get("library")}} for r in wf.rules}}
    print("PARSED=" + json.dumps({{"rules": rules, "pythonpath": os.environ.get("PYTHONPATH")}}))
"""


def parse_workflow(env=None) -> dict:
    """{"rules": rule name -> {script, conda, library}, "pythonpath": the PYTHONPATH the workflow leaves for
    its jobs}, from the repo's workflow parsed in a fresh process."""
    code = _CODE.format(snakefile=str(SNAKEFILE))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.split("PARSED=")[1])
