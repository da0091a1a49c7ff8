"""Provenance of every output: what made it, from what, with which code, config, packages, device and seeds.

Each job writes one JSON record next to its outputs (`sidecar_path`); the record is built by `job_record`
from values the job gathers at its end (see `dlmi_workflow.runlog.finish`). Each NIfTI output also gets a
BIDS metadata sidecar (`image_sidecar`) naming its sources as BIDS URIs, so that another BIDS app can read
the derivatives. Nothing volatile (code version, time,
config hash) is a rule parameter, so a new commit re-runs no job by itself.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

SIDECAR_SUFFIX = ".prov.json"
# Longest first: the extension of `x.nii.gz` is `.nii.gz`, not `.gz`.
EXTENSIONS = (".nii.gz", ".tsv.gz", ".nii", ".npz", ".h5", ".tsv", ".json", ".txt", ".png", ".svg", ".html")
# The sources that make up the workflow's code, relative to the repository root.
SOURCE_GLOBS = ("scripts/**/*.py", "workflow/Snakefile", "workflow/**/*.smk", "workflow/**/*.yaml",
                "envs/*.yaml", "requirements.txt", "pyproject.toml")
BIDS_VERSION = "1.10.0"
PIPELINE_NAME = "dlmi-workflow"
REQUIRED_KEYS = ("Rule", "Wildcards", "Inputs", "Outputs", "ConfigHash", "CodeVersion", "SourceHash", "Packages",
                 "Python", "Device", "Seed", "StartTime", "EndTime")


def sidecar_path(output: str | Path) -> Path:
    """The provenance record of `output`: its BIDS stem plus `.prov.json`, in the same folder.

    `sub-001_desc-recon_T1w.nii.gz` -> `sub-001_desc-recon_T1w.prov.json`. The `.prov.json` extension keeps
    the record apart from BIDS metadata sidecars (`participants.json` describes `participants.tsv`, and the
    workflow writes JSON outputs of its own), so a record never overwrites an output. Outputs of one job
    that share a stem (participants.tsv and participants.json) share one record.
    """
    path = Path(output)
    name = path.name
    for ext in EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    else:
        name = path.stem or name
    return path.with_name(name + SIDECAR_SUFFIX)


def is_sidecar(path: str | Path) -> bool:
    return str(path).endswith(SIDECAR_SUFFIX)


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text, whatever the key order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_hash(config: dict) -> str:
    """`sha256:<hex>` of the study config (with its defaults filled in); independent of key order."""
    return "sha256:" + hashlib.sha256(canonical_json(config).encode()).hexdigest()


def source_files(root: str | Path) -> list[Path]:
    """The workflow's source files under the repository `root` (sorted, caches excluded)."""
    root = Path(root)
    found = {p for pattern in SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()}
    return sorted(p for p in found if "__pycache__" not in p.parts and not any(
        part.startswith(".") for part in p.relative_to(root).parts))


def source_hash(root: str | Path) -> str:
    """`sha256:<hex>` over the relative paths and bytes of `source_files(root)`: the code, git or not."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def git_describe(root: str | Path) -> str | None:
    """`git describe --tags --always --dirty` of the checkout at `root`, or None when there is none."""
    try:
        result = subprocess.run(["git", "-C", str(root), "describe", "--tags", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    described = result.stdout.strip()
    return described if result.returncode == 0 and described else None


def git_remote_url(root: str | Path) -> str | None:
    """The `origin` remote of the checkout at `root` (credentials stripped), or None."""
    try:
        result = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"], capture_output=True,
                                text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    url = result.stdout.strip()
    if result.returncode != 0 or not url:
        return None
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def code_version(root: str | Path, source_digest: str | None = None) -> str:
    """`git describe` of the checkout; outside git, `src-` and the first 12 hex digits of the source hash."""
    described = git_describe(root)
    if described:
        return described
    digest = source_digest or source_hash(root)
    return "src-" + digest.split(":", 1)[1][:12]


def package_versions(modules: dict | None = None) -> dict[str, str]:
    """Version of every third-party top-level package in `modules` (default: `sys.modules`).

    Takes the version of the installed distribution of that name, else the package's `__version__`; the
    standard library and packages with neither are left out.
    """
    from importlib import metadata

    modules = sys.modules if modules is None else modules
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    versions = {}
    for name in sorted({key.split(".", 1)[0] for key in list(modules)}):
        if name in stdlib or name.startswith("_") or name == "__main__":
            continue
        try:
            version = metadata.version(name)
        except (metadata.PackageNotFoundError, ValueError):
            version = getattr(modules.get(name), "__version__", None)
        if isinstance(version, str) and version:
            versions[name] = str(version)
    return versions


def utc_now() -> str:
    """The current time, UTC, ISO 8601 with seconds (e.g. 2026-01-31T12:00:00Z)."""
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def job_record(*, rule: str, wildcards: dict, inputs: list[str], outputs: list[str], config: dict,
               code: str, source_digest: str, packages: dict[str, str], device: str, study_seed: int | None,
               derived_seeds: dict[str, int], start: str, end: str, threads: int | None = None) -> dict:
    """The provenance record of one job, as written to each of its sidecars.

    Seed: the study seed and every seed the job derived from it (`"<subject>/<purpose>": seed`, see
    `dlmi.seeding.derive_seed`); an empty `Derived` means the job drew no seeded random numbers of its own
    (or used the study seed directly).
    """
    return {
        "GeneratedBy": PIPELINE_NAME,
        "Rule": rule,
        "Wildcards": dict(wildcards),
        "Inputs": [str(p) for p in inputs],
        "Outputs": [str(p) for p in outputs],
        "ConfigHash": config_hash(config),
        "CodeVersion": code,
        "SourceHash": source_digest,
        "Packages": dict(sorted(packages.items())),
        "Python": platform.python_version(),
        "Device": device,
        "Threads": threads,
        "Seed": {"Study": study_seed, "Derived": dict(sorted(derived_seeds.items()))},
        "StartTime": start,
        "EndTime": end,
    }


def missing_keys(record: dict) -> list[str]:
    """Keys of `REQUIRED_KEYS` that `record` lacks (for checks and tests)."""
    return [key for key in REQUIRED_KEYS if key not in record]


def image_sidecar_path(output: str | Path) -> Path | None:
    """The BIDS metadata sidecar of a NIfTI output (its stem plus `.json`), None for other files."""
    name = Path(output).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext) and len(name) > len(ext):
            return Path(output).with_name(name[: -len(ext)] + ".json")
    return None


def bids_uri(path: str | Path, datasets: dict[str, str]) -> str | None:
    """The BIDS URI (`bids:<dataset>:<relative path>`) of `path` in one of `datasets` (name -> root; the
    empty name is the output dataset itself), or None when it lies in none of them."""
    resolved = Path(path).resolve()
    for name, root in datasets.items():
        if resolved.is_relative_to(Path(root).resolve()):
            return f"bids:{name}:{resolved.relative_to(Path(root).resolve()).as_posix()}"
    return None


def image_sidecar(rule: str, inputs: list[str], datasets: dict[str, str]) -> dict:
    """The BIDS sidecar of an image a job of `rule` wrote: its `Sources`, the job's inputs that lie in a BIDS
    dataset of `datasets` (see `bids_uri`; the others, such as a network checkpoint, are in the `.prov.json`
    record only)."""
    sources = [uri for uri in (bids_uri(p, datasets) for p in inputs) if uri is not None]
    return {"Description": f"Made by the rule {rule} of {PIPELINE_NAME} (provenance: the .prov.json record "
                           "beside it)", "Sources": sources}


def dataset_description(version: str, code_url: str | None = None, name: str = "dlmi-workflow study",
                        links: dict[str, str] | None = None) -> dict:
    """`dataset_description.json` of the output folder, a BIDS derivative dataset; `links`: DatasetLinks
    (name -> location) of the datasets its images' `Sources` name, e.g. {"raw": the BIDS input dataset}."""
    generated_by = {"Name": PIPELINE_NAME, "Version": version,
                    "Description": "Simulated acquisition, reconstruction, registration, segmentation, "
                                   "features and AD-vs-CN models; a .prov.json record beside each output "
                                   "holds its config hash, code version, packages, device and seeds."}
    if code_url:
        generated_by["CodeURL"] = code_url
    return {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        **({"DatasetLinks": links} if links else {}),
    }
