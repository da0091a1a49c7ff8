"""Crash safety, determinism and provenance of a whole study.

One extra tiny study is started from an empty folder, killed with SIGKILL (Snakemake and its job processes)
while register_t1 runs, given a truncated output of the running job, and re-run the way `make unlock run`
does. Its NIfTI images (data and affine) and TSV tables must equal those of the session's uninterrupted
`tiny_study` bit for bit. That comparison is also the determinism check: both studies start from empty
folders and compute every file themselves (the killed job's outputs are recomputed, nothing is copied), in a
different job order, with a different PYTHONHASHSEED.
"""
import base64
import glob
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO, SNAKEFILE, SNAKEMAKE, snakemake

from dlmi import provenance

pytestmark = pytest.mark.slow
TINY = REPO / "config" / "tiny.yaml"
RUNNING = "logs/register_t1/sub-*.log"  # a mid-study job: its log appears when the job starts


def outputs(results: Path) -> list[Path]:
    """Every file the study's jobs wrote (no provenance records, no report, no hidden files)."""
    return sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()
                  and not provenance.is_sidecar(p) and p.name != "report.html" and not p.name.startswith("."))


def start_killed_study(workdir: Path) -> str:
    """Start the tiny study in its own process group, SIGKILL the group while register_t1 runs; returns
    a subject whose register_t1 job was running."""
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile",
           str(REPO / "config" / "config.yaml"), str(TINY), "--cores", "2"]
    env = dict(os.environ, PYTHONHASHSEED="12345")  # the tiny_study fixture runs with 0
    with open(workdir / "killed-run.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 1200
    while not glob.glob(str(workdir / RUNNING)):
        assert proc.poll() is None, (workdir / "killed-run.log").read_text()[-4000:]
        assert time.monotonic() < deadline, "register_t1 never started"
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Snakemake marks the outputs of each job it starts as incomplete until the job has finished.
    marked = [base64.b64decode(p.name).decode() for p in (workdir / ".snakemake" / "incomplete").iterdir()]
    warped = sorted(m for m in marked if m.endswith("_space-template_desc-warped_T1w.nii.gz"))
    assert warped, f"no register_t1 job was running at the kill: {marked}"
    return warped[0].split("/")[1].removeprefix("sub-")


def planned_jobs(log: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job that a Snakemake run's log lists."""
    jobs, rule = set(), None
    for line in log.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            rule = stripped.split()[1].rstrip(":")
        elif rule and stripped.startswith("wildcards:"):
            jobs.add((rule, stripped.removeprefix("wildcards:").strip()))
    return jobs


@pytest.fixture(scope="module")
def crashed_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("crash")
    subject = start_killed_study(workdir)
    results = workdir / "results"
    assert not (results / "group" / "metrics.tsv").exists()  # the kill came mid-study
    locked = snakemake(workdir, "--cores", "2", configs=[TINY], check=False)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    snakemake(workdir, "--unlock", configs=[TINY])  # as `make unlock` does
    # A truncated file under the final name of the running job's output, as a non-atomic writer would leave
    # (or a complete file of a job killed before it wrote its other outputs).
    valid = results / f"sub-{subject}" / "anat" / f"sub-{subject}_desc-recon_T1w.nii.gz"
    truncated = results / f"sub-{subject}" / "anat" / f"sub-{subject}_space-template_desc-warped_T1w.nii.gz"
    truncated.write_bytes(valid.read_bytes()[:300])
    refused = snakemake(workdir, "--dry-run", "--cores", "2", configs=[TINY], check=False)
    assert refused.returncode != 0 and "IncompleteFilesException" in refused.stdout + refused.stderr
    assert str(truncated.relative_to(workdir)) in refused.stdout + refused.stderr
    rerun = snakemake(workdir, "--cores", "2", "--rerun-incomplete", configs=[TINY])  # as `make run` does
    return workdir, subject, rerun


def test_rerun_after_sigkill_completes_and_redoes_the_killed_job(crashed_study):
    workdir, subject, rerun = crashed_study
    assert ("register_t1", f"subject={subject}") in planned_jobs(rerun.stdout + rerun.stderr)
    assert "Nothing to be done" in snakemake(workdir, "--dry-run", "--cores", "2", configs=[TINY]).stdout
    assert not [p for p in (workdir / "results").rglob(".*")]  # the killed writers' temporaries are cleared


def same_content(a: Path, b: Path) -> bool:
    """NIfTI: same dtype, affine and voxel bytes; .npz: same arrays, byte for byte; anything else: same bytes."""
    if a.name.endswith((".nii", ".nii.gz")):
        x, y = nib.load(a), nib.load(b)
        return (x.get_data_dtype() == y.get_data_dtype() and np.array_equal(x.affine, y.affine)
                and np.asarray(x.dataobj).tobytes() == np.asarray(y.dataobj).tobytes())
    if a.suffix == ".npz":
        with np.load(a) as x, np.load(b) as y:
            return x.files == y.files and all(x[k].tobytes() == y[k].tobytes() for k in x.files)
    return a.read_bytes() == b.read_bytes()


def test_rerun_equals_an_uninterrupted_run_bit_for_bit(crashed_study, tiny_study):
    """Images, tables, raw data, transforms and JSON outputs of the killed-and-rerun study equal the
    uninterrupted study's; since both ran from empty folders this is the from-scratch determinism check too.
    Figures are left out, and dataset_description.json, which holds the code version."""
    (crashed, _, _), (reference, _) = crashed_study, tiny_study
    files = outputs(reference / "results")
    assert files == outputs(crashed / "results")
    compared = [f for f in files if f.suffix != ".png" and f.name != "dataset_description.json"]
    assert len([f for f in compared if f.name.endswith(".nii.gz")]) > 100
    assert len([f for f in compared if f.suffix == ".tsv"]) > 20
    differ = [str(f) for f in compared if not same_content(reference / "results" / f, crashed / "results" / f)]
    assert differ == []


def records(results: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in results.rglob("*" + provenance.SIDECAR_SUFFIX)}


def test_every_output_has_a_provenance_record(tiny_study):
    workdir, _ = tiny_study
    results = workdir / "results"
    found = records(results)
    for name in outputs(results):
        sidecar = provenance.sidecar_path(results / name)
        assert sidecar in found, f"no provenance record for {name}"
        record = found[sidecar]
        assert provenance.missing_keys(record) == [], sidecar
        assert str(Path("results") / name) in record["Outputs"]
    hashes = {r["ConfigHash"] for r in found.values()}
    assert len(hashes) == 1 and hashes.pop().startswith("sha256:")
    assert all(r["CodeVersion"] and r["SourceHash"].startswith("sha256:") for r in found.values())
    by_rule = {r["Rule"]: r for r in found.values()}
    assert by_rule["simulate_mri"]["Seed"]["Study"] == 7  # config/tiny.yaml
    subject = by_rule["simulate_mri"]["Wildcards"]["subject"]
    assert list(by_rule["simulate_mri"]["Seed"]["Derived"]) == [f"{subject}/simulate_mri"]
    assert by_rule["reconstruct_ct"]["Device"] in ("cpu",) or by_rule["reconstruct_ct"]["Device"].startswith("cuda")
    assert {"torch", "numpy", "nibabel"} <= set(by_rule["register_t1"]["Packages"])
    assert "torch" not in by_rule["gather_features"]["Packages"]  # only what the job imported


def test_dataset_description(tiny_study):
    workdir, _ = tiny_study
    description = json.loads((workdir / "results" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"][0]["Name"] == "dlmi-workflow" and description["GeneratedBy"][0]["Version"]


def test_config_hash_is_stable_across_runs_and_follows_the_config(crashed_study, tiny_study, tmp_path):
    (crashed, _, _), (reference, _) = crashed_study, tiny_study
    hashes = {r["ConfigHash"] for r in records(crashed / "results").values()}
    assert hashes == {r["ConfigHash"] for r in records(reference / "results").values()}
    snakemake(tmp_path, "--cores", "1", "results/participants.tsv", configs=[TINY, {"model": {"bootstrap": 100}}])
    changed = json.loads((tmp_path / "results" / "participants.prov.json").read_text())["ConfigHash"]
    assert changed not in hashes
