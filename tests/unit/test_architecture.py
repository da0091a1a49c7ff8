"""The house's structure: the science package stands alone, no private name crosses a module, the
"adding a stage" checklist holds for every rule, and the generated docs match the code."""
import ast
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from dlmi_workflow import docs, sources

SCRIPTS = REPO / "scripts"
PYTHON_FILES = sorted(p for p in SCRIPTS.rglob("*.py") if "__pycache__" not in p.parts)
RULES = docs.workflow_rules()
SHARED_SCRIPTS = {"gather_tables": {"gather_features", "gather_quality"}}  # one script, two tables


def imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, imported names) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return found


def test_the_science_package_never_imports_the_workflow_support():
    for path in (SCRIPTS / "dlmi").rglob("*.py"):
        for module, _ in imports(path):
            assert module.split(".")[0] != sources.SUPPORT, f"{path.relative_to(REPO)} imports {module}"


def test_no_private_name_is_imported_or_used_across_modules():
    for path in PYTHON_FILES:
        tree = ast.parse(path.read_text())
        aliases = set()
        for module, names in imports(path):
            if module.split(".")[0] in (sources.PACKAGE, sources.SUPPORT):
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path.relative_to(REPO)} imports {private} from {module}"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                aliases |= {a.asname or a.name.split(".")[-1] for a in node.names
                            if (getattr(node, "module", None) or a.name).split(".")[0]
                            in (sources.PACKAGE, sources.SUPPORT)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                name = node.attr
                assert not (name.startswith("_") and not name.startswith("__")), \
                    f"{path.relative_to(REPO)} uses {node.value.id}.{name}"


@pytest.mark.parametrize("rule", RULES, ids=[r["rule"] for r in RULES])
def test_every_rule_follows_the_adding_a_stage_checklist(rule):
    """docs/adding-a-stage.md: one script named after the rule, with log, benchmark, resources and a conda
    env; the log and benchmark are named after the rule (so a renamed rule cannot keep another's); the
    script runs its `main` inside the input-error guard and writes provenance records."""
    name = rule["rule"]
    assert rule["script"], f"rule {name} has no script"
    script = Path(rule["script"]).stem
    assert script == name or name in SHARED_SCRIPTS.get(script, ()), f"rule {name} runs {rule['script']}"
    body = rule["body"]
    for directive in ("output", "log", "benchmark", "resources", "conda", "script"):
        assert f"\n    {directive}:" in "\n" + body, f"rule {name} has no {directive}:"
    assert re.search(rf'logfile\("{name}["/]', body) and re.search(rf'benchfile\("{name}["/]', body), name
    text = (REPO / rule["script"]).read_text()
    assert "def main(" in text and "runlog.stop_on_input_error()" in text and "runlog.finish(" in text, name


def test_every_script_is_some_rule_s_script():
    used = {Path(r["script"]).name for r in RULES}
    assert {p.name for p in SCRIPTS.glob("*.py")} == used


def test_generated_docs_match_the_code():
    """docs/config.md and the generated blocks of docs/architecture.md (`python -m dlmi_workflow.docs`)."""
    for path, text in docs.generated_docs().items():
        assert path.read_text() == text, f"{path.relative_to(REPO)} is stale: run `python -m dlmi_workflow.docs`"


def test_every_module_is_in_the_architecture_table():
    table = (REPO / "docs" / "architecture.md").read_text()
    for path in PYTHON_FILES:
        if path.parent != SCRIPTS:
            name = ".".join(path.relative_to(SCRIPTS).with_suffix("").parts).removesuffix(".__init__")
            assert f"`{name}`" in table, name


def test_no_file_points_outside_the_repo():
    """A clone has no sibling folders: nothing the repo ships may refer to the shared folder beside it."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True)
    outside = "../" + "shared"
    for name in tracked.stdout.split():
        path = REPO / name
        if path.suffix in (".md", ".py", ".smk", ".yaml", ".rst", ".txt", ".toml") and path.is_file():
            assert outside not in path.read_text(), name


def test_the_readme_is_a_front_door():
    """Under 8 KB, its stage table names every rule, and every link inside README and docs/ resolves."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) < 8 * 1024
    for rule in RULES:
        assert f"`{rule['rule']}`" in readme, rule["rule"]
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
