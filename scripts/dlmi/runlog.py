"""Logging for rule scripts: one log file per job, progress lines with timestamps, and one clear last line
when a job stops on bad input."""
from __future__ import annotations

import contextlib
import logging
import re
import sys

from dlmi.io import InputError


def start(log_path: str | None, name: str) -> logging.Logger:
    """Send INFO and above to `log_path` (and stderr) and return the rule's logger."""
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
