"""What a user sees when a job stops on bad input, and the line that ends a run where subjects failed."""
import subprocess
import sys

from dlmi_workflow import runlog

SCRIPT = """
import sys
from dlmi_workflow import runlog
from dlmi.io import InputError

with runlog.stop_on_input_error():
    logger = runlog.start(sys.argv[1], "reconstruct_ct")
    logger.info("reading the sinogram")
    if sys.argv[2] == "input":
        raise InputError("results/sub-003/ct/sub-003_sinogram.npz: missing acquisition parameter 'pixel_mm'")
    raise RuntimeError("a bug")
"""
LINE = "dlmi ERROR results/sub-003/ct/sub-003_sinogram.npz: missing acquisition parameter 'pixel_mm'"


def run_script(tmp_path, kind):
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log), kind], capture_output=True, text=True,
                            check=False)
    return result, log.read_text()


def test_input_error_ends_the_log_and_stderr_with_one_line(tmp_path):
    result, log = run_script(tmp_path, "input")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for text in (result.stderr, log):
        lines = text.strip().splitlines()
        assert len(lines) == 2 and lines[0].endswith("reconstruct_ct INFO reading the sinogram")
        assert lines[-1].endswith(LINE)


def test_other_errors_keep_their_traceback(tmp_path):
    result, _ = run_script(tmp_path, "bug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("RuntimeError: a bug")


def write_log(path, *lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_last_error_reads_a_log_written_by_start(tmp_path):
    run_script(tmp_path, "input")
    assert runlog.last_error(tmp_path / "job.log") == LINE.removeprefix("dlmi ERROR ")
    info = write_log(tmp_path / "ok.log", "2026-11-26 09:44:27,001 reconstruct_ct INFO reading the sinogram")
    assert runlog.last_error(info) is None
    crash = write_log(tmp_path / "crash.log", "2026-11-26 09:44:27,001 register_t1 INFO level 1",
                      "Traceback (most recent call last):", '  File "x.py", line 3, in <module>',
                      "RuntimeError: a bug", "")
    assert runlog.last_error(crash) == "RuntimeError: a bug"


def test_failed_subjects_are_read_from_the_job_logs_and_outputs(tmp_path):
    """A job failed when its log is there (it started) and its outputs are not all there (Snakemake removes
    those of a failed job)."""
    def job(subject, rule, *, log_lines=None, outputs=("a",), present=()):
        log = tmp_path / "logs" / rule / f"sub-{subject}.log"
        if log_lines is not None:
            write_log(log, *log_lines)
        paths = [tmp_path / "results" / f"sub-{subject}_{rule}_{name}" for name in outputs]
        for path in paths:
            if path.name.endswith(present):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x")
        return subject, rule, str(log), [str(path) for path in paths]

    error = "2026-11-26 09:44:27,123 dlmi ERROR results/sub-003/ct/sub-003_sinogram.npz: truncated"
    jobs = [
        job("001", "reconstruct_ct", log_lines=["... INFO done"], present=("a",)),  # finished
        job("002", "reconstruct_ct"),  # not started
        job("003", "reconstruct_ct", log_lines=["2026-11-26 09:44:27,001 dlmi INFO reading", error]),
        job("0010", "register_t1", log_lines=["2026-11-26 09:44:27,001 register_t1 INFO level 1"],
            outputs=("a", "b"), present=("a",)),  # cut off after its first output, no ERROR line
        job("003", "simulate_pet", log_lines=[error.replace("ct/sub-003_sinogram", "pet/sub-003_sinogram")]),
    ]
    failed = runlog.failed_subjects(jobs)
    assert list(failed) == ["003", "0010"]  # in the order of the jobs
    assert failed["003"] == [
        ("reconstruct_ct", jobs[2][2], "results/sub-003/ct/sub-003_sinogram.npz: truncated"),
        ("simulate_pet", jobs[4][2], "results/sub-003/pet/sub-003_sinogram.npz: truncated"),
    ]
    assert failed["0010"] == [("register_t1", jobs[3][2], None)]
    assert runlog.failed_subjects([]) == {}


def test_group_waiting_message():
    log = "logs/reconstruct_ct/sub-003.log"
    one = {"003": [("reconstruct_ct", log, "results/sub-003/ct/sub-003_sinogram.npz: truncated")]}
    assert runlog.group_waiting_message(one, []).splitlines() == [
        "group stage waits for subject 003 (failed); fix it or add it to cohort.exclude",
        f"  subject 003, reconstruct_ct: results/sub-003/ct/sub-003_sinogram.npz: truncated ({log})",
    ]
    two = one | {"005": [("register_t1", "logs/register_t1/sub-005.log", None)]}
    assert runlog.group_waiting_message(two, ["006"]).splitlines() == [
        ("group stage waits for subjects 003, 005 (failed) and subject 006 (not run yet; --keep-going finishes "
         "them); fix them or add them to cohort.exclude"),
        f"  subject 003, reconstruct_ct: results/sub-003/ct/sub-003_sinogram.npz: truncated ({log})",
        ("  subject 005, register_t1: no ERROR line in its log; the job's traceback is in Snakemake's output (or "
         "its SLURM log) (logs/register_t1/sub-005.log)"),
    ]
    assert runlog.group_waiting_message({}, ["001", "002"]) is None
