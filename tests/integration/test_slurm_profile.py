"""The tiny study through config/profiles/slurm on a real SLURM cluster (munged + slurmctld + slurmd on
localhost): every job but those of the local rules goes through sbatch, the per-subject jobs as one group
job per subject, and the results are bit-for-bit those of the local run (`tiny_study`): images, tables, raw
data, transforms."""
import re
import subprocess

import nibabel as nib
import numpy as np
import pytest
import yaml
from workflow_runner import REPO, snakemake

from dlmi_workflow.snakemake_interface import finished_rules, listed_jobs, slurm_run_id

pytestmark = pytest.mark.slow
PROFILE = REPO / "config" / "profiles" / "slurm"

PER_SUBJECT_RULES = {"simulate_anatomy", "simulate_mri", "simulate_ct", "simulate_pet", "reconstruct_mri",
                     "reconstruct_ct", "reconstruct_pet", "register_t1", "register_pet", "segment_t1",
                     "assess_quality", "extract_features", "segment_unet"}
# Group-level rules submitted to SLURM; make_participants, describe_dataset, gather_features, gather_quality,
# make_splits and summarise_models are local rules (workflow/Snakefile) and run beside Snakemake.
GROUP_LEVEL_JOBS = {"build_template": 1, "cross_validate": 9, "cross_validate_cnn": 1, "gather_images": 1,
                    "qc_figure": 8, "simulate_training_subject": 2, "train_unet": 1}  # the U-Net smoke test of config/tiny.yaml
LOCAL_RULES = {"make_participants", "describe_dataset", "gather_features", "gather_quality", "make_splits",
               "summarise_models"}


@pytest.fixture(scope="module")
def slurm_study(slurm, tmp_path_factory):
    """The tiny study run by Snakemake's SLURM executor with the repository's CPU profile. Test-only
    settings on top: keep the SLURM logs of successful jobs (the evidence checked below), poll first after
    2 s instead of 40 s and then every 2 s instead of 10 s (a one-node test cluster, where each stage of the
    DAG would otherwise wait for the next poll)."""
    workdir = tmp_path_factory.mktemp("tiny-slurm")
    run = snakemake(
        workdir, "--profile", str(PROFILE),
        "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2",
        configs=[REPO / "config" / "tiny.yaml"], env=slurm.env(),
    )
    run_id = slurm_run_id(run.stdout + run.stderr)
    jobs = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%i|%T|%k|%C"],
        env=slurm.env(), capture_output=True, text=True, check=True,
    ).stdout.split()
    return workdir, run, [job.split("|") for job in jobs]


def test_every_job_went_through_sbatch(slurm, slurm_study):
    workdir, run, jobs = slurm_study
    n_subjects = 6
    assert jobs and all(state == "COMPLETED" for _, state, _, _ in jobs), jobs
    # One group job per subject (its comment names the grouped rules), one job per group-level rule.
    group_jobs = [job for job in jobs if job[2].startswith("rule_subject_")]
    assert len(group_jobs) == n_subjects
    rule_jobs = {}
    for _, _, comment, _ in jobs:
        if not comment.startswith("rule_subject_"):
            name = comment.removeprefix("rule_").split("_wildcards_")[0]
            rule_jobs[name] = rule_jobs.get(name, 0) + 1
    assert rule_jobs == GROUP_LEVEL_JOBS
    # The local rules' jobs ran beside Snakemake instead.
    ran_locally = {job["rule"] for job in listed_jobs(run.stdout + run.stderr) if job["local"]}
    assert ran_locally - {"all"} == LOCAL_RULES
    cores = yaml.safe_load((PROFILE / "config.yaml").read_text())["cores"]
    assert {cpus for *_, cpus in group_jobs} == {str(cores)}  # the profile's `cores` per group job
    # The controller accepted exactly these batch jobs (and no others).
    submitted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", (slurm.root / "slurmctld.log").read_text())
    assert sorted(submitted) == sorted(job_id for job_id, *_ in jobs)
    # Each left its SLURM log where the executor writes them; a subject's log shows its 13 rules run inside.
    logs = {path.stem: path for path in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert sorted(logs) == sorted(submitted)
    for job_id, *_ in group_jobs:
        assert finished_rules(logs[job_id].read_text()) == PER_SUBJECT_RULES, job_id


def _files(root, pattern):
    return sorted(path.relative_to(root) for path in root.rglob(pattern))


def test_outputs_match_the_local_run(slurm_study, tiny_study):
    slurm_dir, _, _ = slurm_study
    local_dir, _ = tiny_study
    local, remote = local_dir / "results", slurm_dir / "results"
    patterns = ("*.nii.gz", "*.tsv", "*.npz", "*_xfm.txt")
    niftis, tables, arrays, transforms = (_files(local, pattern) for pattern in patterns)
    assert niftis and tables and arrays and transforms
    assert [niftis, tables, arrays, transforms] == [_files(remote, pattern) for pattern in patterns]
    different = []
    for name in niftis:
        a, b = nib.load(local / name), nib.load(remote / name)
        if not (np.array_equal(a.affine, b.affine) and a.get_data_dtype() == b.get_data_dtype()
                and np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))):
            different.append(str(name))
    different += [str(name) for name in tables + transforms
                  if (local / name).read_bytes() != (remote / name).read_bytes()]
    for name in arrays:
        with np.load(local / name) as a, np.load(remote / name) as b:
            if sorted(a.files) != sorted(b.files) or not all(np.array_equal(a[k], b[k]) for k in a.files):
                different.append(str(name))
    assert different == [], f"{len(different)} files differ between the local and the SLURM run"
