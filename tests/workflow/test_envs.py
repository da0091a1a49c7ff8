"""Per-rule conda envs: each rule's env provides every package its script (and the dlmi modules the script
imports) imports, at the version of the venv lock, and dlmi itself imports in a foreign interpreter through
the PYTHONPATH the workflow gives its jobs."""
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from parsed import parse_workflow

from dlmi_workflow import sources

# conda-forge names that differ from the PyPI distribution name
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base"}


def lock_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version.strip()
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_packages(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(conda name -> version, pip name -> version) of an env file; a package without a pin maps to ''."""
    conda, pip = {}, {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                name, _, version = req.partition("==")
                pip[canonical(name)] = version
        else:
            name, _, version = dep.partition("=")
            conda[canonical(name)] = version
    return conda, pip


@pytest.fixture(scope="module")
def rules():
    return parse_workflow()["rules"]


def test_every_rule_runs_a_script_in_a_conda_env(rules):
    for name, rule in rules.items():
        script, env = rule["script"], rule["conda"]
        if name == "all":
            continue
        assert script and Path(script).is_file(), name
        assert env and Path(env).is_file() and Path(env).parent == REPO / "envs", name


def test_each_env_provides_what_its_rules_import(rules):
    dists = importlib.metadata.packages_distributions()
    missing = []
    for name, rule in rules.items():
        script, env = rule["script"], rule["conda"]
        if script is None:
            continue
        conda, pip = env_packages(Path(env))
        for top in sources.third_party_imports(script):
            dist = canonical(dists[top][0])
            if CONDA_NAME.get(dist, dist) not in conda and dist not in pip:
                missing.append(f"{name}: {top} ({dist}) not in {Path(env).name}")
    assert not missing, "\n".join(missing)


def test_env_versions_agree_with_the_lock():
    lock = lock_versions()
    to_pip = {v: k for k, v in CONDA_NAME.items()}
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for env in sorted((REPO / "envs").glob("*.yaml")):
        conda, pip = env_packages(env)
        assert conda.pop("python") == python, env.name
        conda.pop("pip", None)
        for name, version in [*((to_pip.get(n, n), v) for n, v in conda.items()), *pip.items()]:
            assert name in lock, f"{env.name}: {name} is not in requirements.txt"
            assert version == lock[name], f"{env.name}: {name}={version} but the lock has {lock[name]}"


def test_no_env_installs_dlmi_itself():
    """dlmi comes from the checkout through PYTHONPATH: a `-e ..` in an env file would resolve relative to
    Snakemake's copy of the env file, not to the repo."""
    for env in (REPO / "envs").glob("*.yaml"):
        _, pip = env_packages(env)
        assert not any(name.startswith(("-e", ".", "/")) or "dlmi" in name for name in pip), env.name


def test_dlmi_imports_in_an_interpreter_that_does_not_have_it(tmp_path):
    """The workflow puts scripts/ on its jobs' PYTHONPATH; the base interpreter of the venv (which has no
    dlmi installed) then imports dlmi from the checkout, as a per-rule conda env's python would."""
    base = getattr(sys, "_base_executable", sys.executable)
    probe = "import dlmi_workflow.sources, sys; print(dlmi_workflow.sources.__file__)"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    without = subprocess.run([base, "-c", probe], capture_output=True, text=True, env=clean, cwd=tmp_path, check=False)
    assert without.returncode != 0, "the base interpreter already has dlmi: the check below would prove nothing"
    job_env = dict(clean, PYTHONPATH=parse_workflow(env=clean)["pythonpath"])
    inside = subprocess.run([base, "-c", probe], capture_output=True, text=True, env=job_env, cwd=tmp_path, check=False)
    assert inside.returncode == 0, inside.stderr
    assert Path(inside.stdout.strip()) == REPO / "scripts" / "dlmi_workflow" / "sources.py"
