"""Static safety checks of the code base: YAML is parsed safely, nothing reaches a shell, nothing unpickles.

The workflow-level checks (every rule is a script rule, every wildcard is constrained, a config file with a
Python tag does not run) are in tests/workflow/test_fault_tolerance.py.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()


def python_files(*folders):
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py") if p.resolve() != THIS)


def workflow_files():
    return sorted([REPO / "workflow" / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")])


def calls(path):
    """(dotted name, call node) of every call in a Python file, e.g. ("subprocess.run", node)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def keyword(node, name):
    return next((k.value for k in node.keywords if k.arg == name), None)


def is_true(value):
    return isinstance(value, ast.Constant) and value.value is True


YAML_CALL = re.compile(r"\byaml\s*\.\s*(\w+)\s*\(")


def test_yaml_is_only_loaded_with_the_safe_loader():
    sources = python_files("scripts", "tests", "bench") + workflow_files()
    used = {}
    for path in sources:
        for name in YAML_CALL.findall(path.read_text()):
            used.setdefault(name, []).append(path.relative_to(REPO))
        assert not re.search(r"\bLoader\s*=", path.read_text()), path
    loaders = {name for name in used if "load" in name}
    assert loaders == {"safe_load"}, used  # yaml.load, full_load, unsafe_load, load_all: none
    assert len(used["safe_load"]) >= 1


SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "pty.spawn"}


@pytest.mark.parametrize("path", python_files("scripts", "bench", "tests"), ids=lambda p: str(p.relative_to(REPO)))
def test_no_python_code_reaches_a_shell(path):
    for name, node in calls(path):
        assert name not in SHELL_CALLS and not name.startswith(("os.exec", "os.spawn")), f"{path}: {name}"
        assert not is_true(keyword(node, "shell")), f"{path}: {name}(..., shell=True)"


def test_no_rule_has_a_shell_or_run_block():
    for path in workflow_files():
        text = path.read_text()
        assert not re.search(r"^\s+(shell|run|wrapper|notebook|cwl|template_engine)\s*:", text, re.MULTILINE), path
        assert not re.search(r"\bshell\s*\(", text), path
    rules = sum(len(re.findall(r"^rule \w+:", p.read_text(), re.MULTILINE)) for p in workflow_files())
    scripts = sum(len(re.findall(r"^    script:", p.read_text(), re.MULTILINE)) for p in workflow_files())
    assert scripts == rules - 1  # every rule but `all` (which only lists targets) runs a script


@pytest.mark.parametrize("path", python_files("scripts"), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_is_unpickled(path):
    for name, node in calls(path):
        assert name not in {"pickle.load", "pickle.loads", "joblib.load", "cloudpickle.load"}, f"{path}: {name}"
        if name in {"np.load", "numpy.load"}:
            assert not is_true(keyword(node, "allow_pickle")), f"{path}: np.load(allow_pickle=True)"
        if name == "torch.load":
            assert is_true(keyword(node, "weights_only")), f"{path}: torch.load without weights_only=True"
