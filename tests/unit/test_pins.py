"""requirements.in pins what the workflow support reads by version (Snakemake: dlmi_workflow.snakemake_interface;
the SLURM executor plugin and its job step: dlmi_workflow.cluster), and the lock (requirements.txt, a pip freeze
of requirements.in) holds every pinned version as pinned."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return found


def test_the_snakemake_and_slurm_plugins_are_pinned():
    pinned = pins(REPO / "requirements.in")
    assert {"snakemake", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"} <= set(pinned)


def test_every_pin_is_the_locked_version():
    lock = pins(REPO / "requirements.txt")
    assert {name: lock.get(name) for name in pins(REPO / "requirements.in")} == pins(REPO / "requirements.in")
