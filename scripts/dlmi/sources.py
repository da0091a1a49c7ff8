"""What a rule script runs: the dlmi modules it imports (transitively) and the third-party packages they need.

Snakemake reruns a script rule when its script changes, but it does not see the library modules the script
imports. The workflow therefore gives each rule a `library` parameter, `library_version(script)`: one
content hash per dlmi module in the script's import closure, so that editing `dlmi/ct.py` reruns exactly the
rules whose scripts import it (directly or through another dlmi module). The closure is read from the
source (every `import` statement, also those inside functions), not from a hand-kept table.
Only the standard library is imported here: the Snakefile calls this at parse time.
"""
from __future__ import annotations

import ast
import hashlib
import os
import sys
from functools import cache
from pathlib import Path

PACKAGE = "dlmi"
LIBRARY = Path(__file__).resolve().parent  # scripts/dlmi


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


def _module_file(name: str) -> Path | None:
    """The source file of a dlmi module name, or None for names that are not dlmi modules."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return LIBRARY / "__init__.py"
    candidate = LIBRARY.joinpath(*parts[1:]).with_suffix(".py")
    return candidate if candidate.is_file() else None


@cache
def library_modules(script: str | Path) -> tuple[str, ...]:
    """Sorted dotted names of the dlmi modules `script` imports, directly or through other dlmi modules
    (importing `dlmi.x` also runs `dlmi/__init__.py`, so `dlmi` is in every non-empty closure)."""
    seen: set[str] = set()
    todo = [(Path(script), None)]
    while todo:
        path, package = todo.pop()
        for name in imported_modules(path, package):
            for k in range(1, len(name.split(".")) + 1):  # `dlmi.ct` also imports the package `dlmi`
                prefix = ".".join(name.split(".")[:k])
                source = _module_file(prefix)
                if source is not None and prefix not in seen:
                    seen.add(prefix)
                    todo.append((source, PACKAGE if source.name == "__init__.py" else prefix.rpartition(".")[0]))
    return tuple(sorted(seen))


def module_path(name: str) -> Path:
    source = _module_file(name)
    if source is None:
        raise ValueError(f"{name!r} is not a module of the {PACKAGE} library")
    return source


@cache
def library_version(script: str | Path) -> str:
    """One line naming each dlmi module `script` runs with the first 12 hex digits of its content hash,
    e.g. 'dlmi@1f2e.. dlmi.ct@9a8b.. dlmi.io@..'. A rule parameter: it changes exactly when one of
    those modules changes."""
    return " ".join(
        f"{name}@{hashlib.sha256(module_path(name).read_bytes()).hexdigest()[:12]}"
        for name in library_modules(script)
    )


def third_party_imports(script: str | Path) -> set[str]:
    """Top-level names of the packages outside the standard library and dlmi that `script` and its dlmi
    modules import (e.g. {'numpy', 'torch', 'SimpleITK'})."""
    files = [Path(script)] + [module_path(name) for name in library_modules(script)]
    tops = {name.split(".")[0] for f in files for name in imported_modules(f, PACKAGE)}
    return {t for t in tops if t != PACKAGE and t not in sys.stdlib_module_names}


def export_to_jobs(folder: str) -> None:
    """Put `folder` first on the PYTHONPATH that jobs started from this process inherit (once)."""
    current = os.environ.get("PYTHONPATH", "")
    if folder not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, current]))
