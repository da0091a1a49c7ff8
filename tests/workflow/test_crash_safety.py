"""Crash safety, determinism and provenance of a whole study.

One extra study of the tiny study's first two subjects (their draws depend only on seed and subject, so they
are the same people as in the session's `tiny_study`) is started from an empty folder, asked for every
per-subject output, and killed with SIGKILL (Snakemake and its job processes) at a point in the jobs'
progress, not in time (below). The markers Snakemake left say which outputs were mid-write (in place, job
unfinished): a plain run must refuse with IncompleteFilesException naming each of them (Snakemake checks them
before the lock), and `make run`'s --rerun-incomplete gets past them and stops at the stale lock with
LockException. After `make unlock` and a planted truncated output, a run with --rerun-incomplete must finish
with NIfTI images (data and affine), tables, raw data and transforms of the template and of both subjects
equal to those of the session's uninterrupted `tiny_study`, bit for bit. That comparison is also the
determinism check: both studies start from empty folders and compute every file themselves (the killed jobs'
outputs are recomputed, nothing is copied), in a different job order, with a different PYTHONHASHSEED. (The
group stage's tables are compared bit for bit by the SLURM test, tests/integration.)

The kill comes while a register_t1 job runs, at the first poll (50 a second) that finds a job mid-write:
another job's output, or register_t1's own affine, which it writes before the velocity field. Which job it was
is printed and written to `crash-test.log` in the study folder.
"""
import base64
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

from dlmi_workflow import provenance
from dlmi_workflow.snakemake_interface import planned_jobs

pytestmark = pytest.mark.slow
TINY = REPO / "config" / "tiny.yaml"
SUBJECTS = ["001", "002"]
CONFIGS = [TINY, {"cohort": {"n_subjects": len(SUBJECTS)}}]
# Every per-subject job is upstream of these (assess_quality reads all of a subject's images and transforms).
TARGETS = [f"results/sub-{s}/{path}" for s in SUBJECTS
           for path in (f"sub-{s}_features.tsv", f"qc/sub-{s}_recon.tsv", f"qc/sub-{s}_registration.tsv",
                        f"qc/sub-{s}_segmentation.tsv")]
CHOSEN = "register_t1"  # the mid-study job that must be running at the kill
CHOSEN_OUTPUT = "_space-template_desc-warped_T1w.nii.gz"  # its last output (rules/register.smk)
CHOSEN_OUTPUTS = (CHOSEN_OUTPUT, "_from-T1w_to-template_mode-image_xfm.txt",
                  "_from-T1w_to-template_desc-velocity_xfm.nii.gz")


def outputs(results: Path) -> list[Path]:
    """Every file the study's jobs wrote (no provenance records, no report, no hidden files)."""
    return sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()
                  and not provenance.is_sidecar(p) and p.name != "report.html" and not p.name.startswith("."))


def marked(workdir: Path) -> list[str]:
    """Output paths (relative to `workdir`) that Snakemake marks incomplete: those of the jobs it has started
    and not yet seen finish."""
    folder = workdir / ".snakemake" / "incomplete"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    found = []
    for name in names:
        try:
            found.append(base64.b64decode(name).decode())
        except ValueError:  # a marker being written or removed as we read
            continue
    return sorted(found)


def mid_write(workdir: Path, paths: list[str]) -> list[str]:
    """Of the marked outputs, those already in place: their job had renamed them in when it was stopped."""
    return [p for p in paths if (workdir / p).exists()]


def of_other_jobs(paths: list[str]) -> list[str]:
    """The paths that no register_t1 job writes."""
    return [p for p in paths if not p.endswith(CHOSEN_OUTPUTS)]


def start_killed_study(workdir: Path) -> dict:
    """Start the study in its own process group and SIGKILL the group at a moment when a register_t1 job runs
    and some job is mid-write: another job's output, or register_t1's own first output (its affine), is in
    place while its job is unfinished. Both are points in the jobs' progress, not in time. Returns what the
    markers showed right after the kill."""
    extra = workdir / "subjects.yaml"
    extra.write_text(f"cohort:\n  n_subjects: {len(SUBJECTS)}\n")
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile",
           str(REPO / "config" / "config.yaml"), str(TINY), str(extra), "--cores", "2", *TARGETS]
    env = dict(os.environ, PYTHONHASHSEED="12345")  # the tiny_study fixture runs with 0
    with open(workdir / "killed-run.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    while True:
        assert proc.poll() is None, "no kill moment came: " + (workdir / "killed-run.log").read_text()[-4000:]
        now = marked(workdir)
        if any(p.endswith(CHOSEN_OUTPUT) for p in now) and mid_write(workdir, now):
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = marked(workdir)
    chosen = [p for p in at_kill if p.endswith(CHOSEN_OUTPUT)]
    assert chosen, f"no {CHOSEN} job was running at the kill: {at_kill}"
    return {"subject": chosen[0].split("/")[1].removeprefix("sub-"), "marked": at_kill,
            "mid_write": mid_write(workdir, at_kill)}


def report(pytestconfig, workdir: Path, text: str) -> None:
    """Show `text` in the test session's output (not captured) and keep it in the study folder."""
    with open(workdir / "crash-test.log", "a") as log:
        log.write(text + "\n")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[crash test] {text}")


@pytest.fixture(scope="module")
def crashed_study(tmp_path_factory, pytestconfig):
    workdir = tmp_path_factory.mktemp("crash")
    kill = start_killed_study(workdir)
    subject, in_place = kill["subject"], kill["mid_write"]
    results = workdir / "results"
    assert not all((workdir / target).exists() for target in TARGETS)  # the kill came mid-study
    others = of_other_jobs(in_place)
    report(pytestconfig, workdir, f"killed while {CHOSEN} ran for sub-{subject}; outputs of started, unfinished "
           f"jobs: {len(kill['marked'])}; mid-write (output already in place): {in_place}, of them written by "
           f"a job other than {CHOSEN}: {others or 'none'}")
    # A plain run stops at the incomplete files, which Snakemake checks before the lock, naming each one.
    plain = snakemake(workdir, "--cores", "2", *TARGETS, configs=CONFIGS, check=False)
    said = plain.stdout + plain.stderr
    assert plain.returncode != 0 and "IncompleteFilesException" in said, said[-3000:]
    assert in_place and all(path in said for path in in_place), said[-3000:]
    # `make run` (--rerun-incomplete) gets past them and stops at the stale lock.
    locked = snakemake(workdir, "--cores", "2", "--rerun-incomplete", *TARGETS, configs=CONFIGS, check=False)
    said = locked.stdout + locked.stderr
    assert locked.returncode != 0 and "LockException" in said, said[-3000:]
    assert not all((workdir / target).exists() for target in TARGETS)  # the refused runs computed nothing
    snakemake(workdir, "--unlock", configs=CONFIGS)  # as `make unlock` does
    # A truncated file under the final name of the running job's output, as a non-atomic writer would leave
    # (or a complete file of a job killed before it wrote its other outputs).
    valid = results / f"sub-{subject}" / "anat" / f"sub-{subject}_desc-recon_T1w.nii.gz"
    truncated = results / f"sub-{subject}" / "anat" / f"sub-{subject}{CHOSEN_OUTPUT}"
    truncated.write_bytes(valid.read_bytes()[:300])
    refused = snakemake(workdir, "--dry-run", "--cores", "2", *TARGETS, configs=CONFIGS, check=False)
    assert refused.returncode != 0 and "IncompleteFilesException" in refused.stdout + refused.stderr
    assert str(truncated.relative_to(workdir)) in refused.stdout + refused.stderr
    rerun = snakemake(workdir, "--cores", "2", "--rerun-incomplete", *TARGETS, configs=CONFIGS)  # as `make run`
    return workdir, subject, rerun


def test_rerun_after_sigkill_completes_and_redoes_the_killed_job(crashed_study):
    workdir, subject, rerun = crashed_study
    assert ("register_t1", f"subject={subject}") in planned_jobs(rerun.stdout + rerun.stderr)
    assert "Nothing to be done" in snakemake(workdir, "--dry-run", "--cores", "2", *TARGETS, configs=CONFIGS).stdout
    assert not list((workdir / "results").rglob(".*"))  # the killed writers' temporaries are cleared


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
    """Images, tables, raw data, transforms and JSON outputs of the template, of the U-Net's training (its
    cohort and checkpoint) and of the two subjects in the killed-and-rerun study equal the uninterrupted study's; since both ran from empty folders this is the
    from-scratch determinism check too. Figures are left out."""
    (crashed, _, _), (reference, _) = crashed_study, tiny_study
    files = outputs(crashed / "results")
    assert {f.parts[0] for f in files} == {"template", "training"} | {f"sub-{s}" for s in SUBJECTS}
    assert set(files) <= set(outputs(reference / "results"))
    compared = [f for f in files if f.suffix != ".png"]
    assert len([f for f in compared if f.name.endswith(".nii.gz")]) > 40
    assert len([f for f in compared if f.suffix == ".tsv"]) >= 4 * len(SUBJECTS)
    differ = [str(f) for f in compared if not same_content(reference / "results" / f, crashed / "results" / f)]
    assert differ == []


def records(results: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in results.rglob("*" + provenance.SIDECAR_SUFFIX)}


def test_every_output_has_a_provenance_record(tiny_study):
    workdir, _ = tiny_study
    results = workdir / "results"
    found = records(results)
    declared = {o for record in found.values() for o in record["Outputs"]}
    for name in outputs(results):
        image = Path("results") / name.with_name(name.name.removesuffix(".json") + ".nii.gz")
        if str(Path("results") / name) not in declared and str(image) in declared:
            # the BIDS sidecar that runlog.finish writes beside a NIfTI output; the image's record covers it
            assert "Sources" in json.loads((results / name).read_text()), name
            continue
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
    assert by_rule["reconstruct_ct"]["Device"] == "cpu" or by_rule["reconstruct_ct"]["Device"].startswith("cuda")
    assert {"torch", "numpy", "nibabel"} <= set(by_rule["register_t1"]["Packages"])
    assert "torch" not in by_rule["gather_features"]["Packages"]  # only what the job imported


def test_dataset_description(tiny_study):
    workdir, _ = tiny_study
    description = json.loads((workdir / "results" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    assert description["GeneratedBy"][0]["Name"] == "dlmi-workflow" and description["GeneratedBy"][0]["Version"]


def test_config_hash_is_stable_across_runs_and_follows_the_config(crashed_study, tiny_study, tmp_path):
    """Records written before the kill and by the rerun share one hash; another cohort size, or another
    model setting, gives another hash."""
    (crashed, _, _), (reference, _) = crashed_study, tiny_study
    hashes = {r["ConfigHash"] for r in records(crashed / "results").values()}
    reference_hashes = {r["ConfigHash"] for r in records(reference / "results").values()}
    assert len(hashes) == 1 and len(reference_hashes) == 1 and hashes != reference_hashes
    snakemake(tmp_path, "--cores", "1", "results/participants.tsv", configs=[TINY, {"model": {"bootstrap": 100}}])
    changed = json.loads((tmp_path / "results" / "participants.prov.json").read_text())["ConfigHash"]
    assert changed not in hashes | reference_hashes
