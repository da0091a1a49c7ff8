"""Logging and provenance for rule scripts: one log file per job, one clear last line when a job stops on
bad input, then one provenance record per output.

A rule script calls `start` first thing in its `main`, runs `main` inside `stop_on_input_error()` and calls
`finish(snakemake)` once `main` has returned, so only a job that wrote all its outputs gets records.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from dlmi import io, provenance
from dlmi.io import InputError

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


@contextlib.contextmanager
def stop_on_input_error():
    """Wrap a rule script's top level: bad input (InputError) stops the job with exit status 1 after one
    ERROR line naming the file and the problem, the last line of the job's log and of its stderr, instead
    of a traceback. Any other exception is a bug and keeps its traceback."""
    try:
        yield
    except InputError as err:
        message = " ".join(str(err).split("\n"))
        logging.getLogger("dlmi").error("%s", message)
        logging.shutdown()
        sys.exit(1)


def failed_subjects(snakemake_log: str) -> list[str]:
    """Subject ids ("003") of the failed jobs in the text of a Snakemake run log: the ids (sub-<id>) on the
    output/log/wildcards lines of its "Error in rule ...:" blocks. Group jobs, whose outputs name no
    subject, contribute none."""
    failed, inside = set(), False
    for line in snakemake_log.splitlines():
        if line.startswith("Error in rule "):
            inside = True
        elif inside and line[:1].isspace():
            key, _, value = line.strip().partition(":")
            if key in ("output", "log", "wildcards"):
                failed.update(re.findall(r"\bsub-([0-9]{3,4})\b", value))
                failed.update(re.findall(r"\bsubject=([0-9]{3,4})\b", value))
        else:
            inside = False
    return sorted(failed)


def group_waiting_message(failed: list[str], unfinished: list[str]) -> str | None:
    """The line that ends a run where subjects failed: the group stage waits for them.

    failed: subjects of the group stage with a failed job; unfinished: other subjects of the group stage
    whose per-subject outputs are not all there yet (not run, e.g. without --keep-going).
    Returns None when no subject failed (then the failure lies elsewhere and its own message says so).
    """
    if not failed:
        return None
    message = f"group stage waits for {_subjects(failed)} (failed)"
    if unfinished:
        message += f" and {_subjects(unfinished)} (not run yet; --keep-going finishes them)"
    them = "them" if len(failed) > 1 else "it"
    return message + f"; fix {them} or add {them} to cohort.exclude"


def _subjects(ids: list[str]) -> str:
    return ("subjects " if len(ids) > 1 else "subject ") + ", ".join(ids)


def _device_used() -> str:
    """The torch device the job computed on: what `dlmi.device.pick_device` chose, else the CPU."""
    device = sys.modules.get("dlmi.device")  # not imported: the job never picked a device (and has no torch)
    used = device.devices_used() if device else []
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
