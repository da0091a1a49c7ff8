"""What a user sees when a job stops on bad input, and the line that ends a run where subjects failed."""
import subprocess
import sys

from dlmi import runlog

SCRIPT = """
import sys
from dlmi import runlog
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


# The error blocks of a Snakemake 9 run log (copied from a --keep-going run of the tiny study, shortened),
# with a group rule's block, whose input names every subject but whose output names none.
SNAKEMAKE_LOG = """\
[Thu Nov 26 09:44:27 2026]
Error in rule reconstruct_ct:
    message: None
    jobid: 35
    input: results/sub-003/ct/sub-003_sinogram.npz
    output: results/sub-003/ct/sub-003_desc-fbp_ct.nii.gz
    log: logs/reconstruct_ct/sub-003.log (check log file(s) for error details)
Execute 1 jobs...
[Thu Nov 26 09:44:28 2026]
localrule qc_figure:
    input: results/sub-001/anat/sub-001_desc-recon_T1w.nii.gz, results/sub-002/anat/sub-002_desc-recon_T1w.nii.gz
    output: results/group/qc/recon_t1.png
Error in rule gather_features:
    jobid: 2
    input: results/sub-001/sub-001_features.tsv, results/sub-002/sub-002_features.tsv
    output: results/group/features.tsv
    log: logs/gather_features.log (check log file(s) for error details)
Error in rule simulate_ct:
    output: results/sub-0010/ct/sub-0010_sinogram.npz
    wildcards: subject=0010
"""


def test_failed_subjects_are_read_from_the_error_blocks():
    assert runlog.failed_subjects(SNAKEMAKE_LOG) == ["0010", "003"]
    assert runlog.failed_subjects("Finished jobid: 3 (Rule: reconstruct_ct)\n") == []


def test_group_waiting_message():
    assert runlog.group_waiting_message(["003"], []) == (
        "group stage waits for subject 003 (failed); fix it or add it to cohort.exclude")
    assert runlog.group_waiting_message(["003", "005"], ["006"]) == (
        "group stage waits for subjects 003, 005 (failed) and subject 006 (not run yet; --keep-going finishes "
        "them); fix them or add them to cohort.exclude")
    assert runlog.group_waiting_message([], ["001", "002"]) is None
