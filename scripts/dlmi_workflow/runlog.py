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
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from dlmi import io
from dlmi.io import InputError
from dlmi_workflow import provenance

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


def last_error(log_path: str | Path) -> str | None:
    """What a job's log (written through `start`) says went wrong: the message of its last ERROR line, else
    the last line of a traceback in it (the exception); None when it has neither."""
    lines = Path(log_path).read_text(errors="replace").splitlines()
    for line in reversed(lines):
        found = re.match(r"\S+ \S+ \S+ ERROR (.*)$", line)  # asctime (2 words), logger, level, message
        if found:
            return found.group(1)
    if any(line.startswith("Traceback") for line in lines):
        return next(line.strip() for line in reversed(lines) if line.strip())
    return None


FailedJobs = dict[str, list[tuple[str, str, str | None]]]  # subject -> [(rule, log path, last ERROR or None)]


def failed_subjects(jobs: Iterable[tuple[str, str, str, list[str]]]) -> FailedJobs:
    """The failed jobs of each subject, from the project's own job logs.

    jobs: (subject, rule, log path, output paths) of per-subject jobs. A job failed when its log exists (it
    started: `start` writes it first thing) but not all its outputs do (Snakemake deletes the outputs of a
    failed job; leave out temporary outputs, which it deletes after use). Returns {subject: [(rule, log path,
    `last_error` of the log)]}, subjects in the order of `jobs`."""
    failed: FailedJobs = {}
    for subject, rule, log, outputs in jobs:
        if Path(log).exists() and not all(Path(output).exists() for output in outputs):
            failed.setdefault(subject, []).append((rule, str(log), last_error(log)))
    return failed


def group_waiting_message(failed: FailedJobs, unfinished: list[str]) -> str | None:
    """The lines that end a run where subjects failed: the group stage waits for them, and why each failed.

    failed: the failed jobs of the subjects of the group stage (`failed_subjects`); unfinished: other
    subjects of the group stage whose per-subject outputs are not all there yet (not run, e.g. without
    --keep-going). Returns None when no subject failed (then the failure lies elsewhere and its own message
    says so).
    """
    if not failed:
        return None
    message = f"group stage waits for {_subjects(list(failed))} (failed)"
    if unfinished:
        message += f" and {_subjects(unfinished)} (not run yet; --keep-going finishes them)"
    them = "them" if len(failed) > 1 else "it"
    lines = [message + f"; fix {them} or add {them} to cohort.exclude"]
    for subject, jobs in failed.items():
        for rule, log, error in jobs:
            said = error or ("no ERROR line in its log; the job's traceback is in Snakemake's output "
                             "(or its SLURM log)")
            lines.append(f"  subject {subject}, {rule}: {said} ({log})")
    return "\n".join(lines)


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
    """Write the provenance record of the Snakemake job `sm` beside each of its outputs, and the BIDS sidecar
    of each NIfTI output (unless the rule writes its own); returns the paths.

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
    datasets = {"": sm.config.get("output_dir", "results")}
    if sm.config.get("input", {}).get("bids_dir"):
        datasets["raw"] = sm.config["input"]["bids_dir"]
    for output in outputs:
        metadata = provenance.image_sidecar_path(output)
        if metadata is not None and str(metadata) not in outputs:  # a rule may write its own sidecar
            io.write_json(metadata, provenance.image_sidecar(sm.rule, [str(p) for p in sm.input], datasets))
            written.append(metadata)
    for path in outputs:  # what an earlier, killed attempt of this job left half-written
        for leftover in io.leftover_temporaries(path) + io.leftover_temporaries(provenance.sidecar_path(path)):
            leftover.unlink(missing_ok=True)
    return written
