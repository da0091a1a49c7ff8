"""What a rule script runs: the dlmi modules it imports (transitively) and the third-party packages they need.

Snakemake reruns a script rule when its script changes, but it does not see the library modules the script
imports. The workflow therefore gives each script rule a `library` parameter, `library_version(script)`,
derived from the rule's own `script:`: one hash per dlmi module in the script's import closure, so that
editing `dlmi/ct.py` reruns exactly the rules whose scripts import it (directly or through another dlmi
module). The closure is read from the source (every `import` statement, also those inside functions), not
from a hand-kept table. Only the science package `dlmi` counts: the workflow support (`dlmi_workflow`: logs,
provenance, config, planning) cannot change an output, so editing it reruns nothing. A module's hash is
taken over its code, not its text: comments and docstrings may change without rerunning anything.
Only the standard library is imported here: the Snakefile calls this at parse time.
"""
from __future__ import annotations

import ast
import hashlib
import os
import sys
from functools import cache
from pathlib import Path

PACKAGE = "dlmi"  # the science: what a rule's outputs depend on
SUPPORT = "dlmi_workflow"  # the workflow support: jobs run it, no output depends on it
ROOT = Path(__file__).resolve().parent.parent  # scripts/


def imported_modules(path: str | Path, package: str | None = None) -> set[str]:
    """Dotted names of every module an `import` in the file may load, relative imports resolved
    against `package` (the dotted package the file belongs to). `from a import b` yields both `a` and
    `a.b`, since `b` may be a submodule."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = (package or "").split(".")[: len((package or "").split(".")) - node.level + 1]
                base = ".".join(p for p in [*parent, base] if p)
            if base and base != "__future__":
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _module_file(name: str, packages: tuple[str, ...] = (PACKAGE,)) -> Path | None:
    """The source file of a module of one of `packages`, or None for names that are not such modules."""
    parts = name.split(".")
    if parts[0] not in packages:
        return None
    path = ROOT.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):  # a module, or a (sub)package
        if candidate.is_file():
            return candidate
    return None


@cache
def library_modules(script: str | Path, packages: tuple[str, ...] = (PACKAGE,)) -> tuple[str, ...]:
    """Sorted dotted names of the modules of `packages` (default: dlmi) that `script` imports, directly or
    through other such modules (importing `dlmi.x` also runs `dlmi/__init__.py`, so `dlmi` is in every
    non-empty closure). A dlmi module that only the workflow support imports is not in the dlmi closure."""
    seen: set[str] = set()
    todo = [(Path(script), None)]
    while todo:
        path, package = todo.pop()
        for name in imported_modules(path, package):
            for k in range(1, len(name.split(".")) + 1):  # `dlmi.recon.ct` also imports the package `dlmi`
                prefix = ".".join(name.split(".")[:k])
                source = _module_file(prefix, packages)
                if source is not None and prefix not in seen:
                    seen.add(prefix)
                    todo.append((source, prefix if source.name == "__init__.py" else prefix.rpartition(".")[0]))
    return tuple(sorted(seen))


def module_path(name: str) -> Path:
    source = _module_file(name, (PACKAGE, SUPPORT))
    if source is None:
        raise ValueError(f"{name!r} is not a module of {PACKAGE} or {SUPPORT}")
    return source


def code_hash(path: str | Path) -> str:
    """sha256 hex digest of a Python file's code: its syntax tree with every docstring removed, written
    back as source (`ast.unparse`), so comments, docstrings and layout do not count."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


@cache
def library_version(script: str | Path) -> str:
    """One line naming each dlmi module `script` runs with the first 12 hex digits of its code hash,
    e.g. 'dlmi@1f2e.. dlmi.recon.ct@9a8b.. dlmi.io@..'. A rule parameter: it changes exactly when the code of
    one of those modules changes."""
    return " ".join(f"{name}@{code_hash(module_path(name))[:12]}" for name in library_modules(script))


def third_party_imports(script: str | Path) -> set[str]:
    """Top-level names of the packages outside the standard library, dlmi and dlmi_workflow that `script`
    and the modules of both packages it runs import (e.g. {'numpy', 'torch', 'SimpleITK'})."""
    packages = (PACKAGE, SUPPORT)
    files = [Path(script)] + [module_path(name) for name in library_modules(script, packages)]
    tops = {name.split(".")[0] for f in files for name in imported_modules(f, PACKAGE)}
    return {t for t in tops if t not in packages and t not in sys.stdlib_module_names}


def export_to_jobs(folder: str) -> None:
    """Put `folder` first on the PYTHONPATH that jobs started from this process inherit (once)."""
    current = os.environ.get("PYTHONPATH", "")
    if folder not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, current]))
