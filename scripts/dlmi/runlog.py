"""Logging and provenance for rule scripts: one log file per job, then one provenance record per output.

A rule script calls `start` first thing in its `main` and `finish(snakemake)` in its `__main__` block once
`main` has returned, so only a job that wrote all its outputs gets records.
"""
from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from dlmi import io, provenance

_STARTED: list[datetime] = []


def start(log_path: str | None, name: str) -> logging.Logger:
    """Send INFO and above to `log_path` (and stderr) and return the rule's logger; notes the start time."""
    _STARTED.append(datetime.now(UTC))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    return logging.getLogger(name)


def _device_used() -> str:
    """The torch device the job computed on: what `dlmi.device.pick_device` chose, else the CPU."""
    if "torch" not in sys.modules:
        return "cpu"
    from dlmi import device

    used = device.devices_used()
    return ", ".join(device.describe(d) for d in used) if used else "cpu"


def _threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


def finish(sm) -> list[Path]:
    """Write the provenance record of the Snakemake job `sm` beside each of its outputs; returns the paths.

    Call it after `main` returned. The record holds the rule, wildcards, inputs and outputs, the config
    hash, the code version (git describe, else a hash of the sources), the versions of the packages the job
    imported, the torch device, the study seed and the seeds derived from it, and the start and end time.
    Removes the temporary files that an earlier attempt of the job, killed mid-write, left beside them.
    """
    from dlmi import seeding

    root = Path(sm.scriptdir).resolve().parent
    digest = provenance.source_hash(root)
    outputs = [str(p) for p in sm.output]
    record = provenance.job_record(
        rule=sm.rule,
        wildcards=dict(sm.wildcards.items()),
        inputs=[str(p) for p in sm.input],
        outputs=outputs,
        config=sm.config,
        code=provenance.code_version(root, digest),
        source_digest=digest,
        packages=provenance.package_versions(),
        device=_device_used(),
        threads=_threads(),
        study_seed=sm.config.get("cohort", {}).get("seed"),
        derived_seeds=seeding.derived_seeds(),
        start=provenance.iso_utc(_STARTED[0]) if _STARTED else provenance.utc_now(),
        end=provenance.utc_now(),
    )
    written = []
    for path in dict.fromkeys(provenance.sidecar_path(p) for p in outputs):
        io.write_json(path, record)
        written.append(path)
    for path in outputs:  # what an earlier, killed attempt of this job left half-written
        for leftover in io.leftover_temporaries(path) + io.leftover_temporaries(provenance.sidecar_path(path)):
            leftover.unlink(missing_ok=True)
    return written
