"""The profiles under config/profiles: they parse, group each subject's jobs into one cluster job, and a
profile whose resources the SLURM executor would ignore (or that asks for a GPU under device: cpu) stops
the run at parse time, before anything is submitted."""
import os
import re

import pytest
from workflow_runner import REPO, job_counts, snakemake

PROFILES = REPO / "config" / "profiles"
TINY = REPO / "config" / "tiny.yaml"
GROUP_LEVEL_JOBS = 13  # build_template, make_participants, describe_dataset, gather_features, gather_quality,
#                      train_models, 7 qc_figure


def submissions(output: str) -> tuple[int, int]:
    """(group jobs, ungrouped jobs other than `all`) in a dry-run's job list: what would be submitted."""
    groups = len(re.findall(r"^\[.*\] Group job subject", output, re.MULTILINE))
    singles = [name for name in re.findall(r"^(?:local)?rule (\w+):", output, re.MULTILINE) if name != "all"]
    return groups, len(singles)


@pytest.mark.parametrize("profile", ["slurm", "slurm-gpu"])
def test_cluster_profile_submits_one_job_per_subject(tmp_path, profile):
    result = snakemake(tmp_path, "--profile", str(PROFILES / profile), "--dry-run", configs=[TINY])
    output = result.stdout + result.stderr
    assert sum(job_counts(output).values()) == 6 * 12 + GROUP_LEVEL_JOBS + 1
    assert submissions(output) == (6, GROUP_LEVEL_JOBS)


def test_group_components_pack_several_subjects_per_job(tmp_path):
    result = snakemake(tmp_path, "--profile", str(PROFILES / "slurm"), "--dry-run", "--group-components",
                       "subject=4", configs=[TINY])
    assert submissions(result.stdout + result.stderr) == (2, GROUP_LEVEL_JOBS)  # 6 subjects: 4 + 2


def test_local_profile_dry_run(tmp_path):
    result = snakemake(tmp_path, "--profile", str(PROFILES / "local"), "--dry-run", configs=[TINY])
    assert sum(job_counts(result.stdout + result.stderr).values()) == 6 * 12 + GROUP_LEVEL_JOBS + 1


BAD_PROFILE = """\
executor: slurm
jobs: 10
slurm-status-command: squeue
default-resources:
  mem_mb: 1000
  runtime: 5
set-resources:
  register_t1:
    gpus: 1
  train_models:
    mem_gb: 8
  segment_t1:
    gpu: 1
"""
BAD_PROFILE_MESSAGE = [
    ("set-resources: rule 'register_t1' asks for resource 'gpus', which the SLURM executor does not read "
    "(did you mean 'gpu'?)"),
    ("set-resources: rule 'train_models' asks for resource 'mem_gb', which the SLURM executor does not read "
    "(did you mean 'mem_mb'?)"),
    ("set-resources: rule 'segment_t1' asks for a GPU (gpu=1), but the config sets device: cpu, so the job would "
    "hold a GPU it never uses; use a CPU profile (config/profiles/slurm) or set device to auto or cuda"),
]


@pytest.mark.parametrize("mode", ["--dry-run", "--forceall"])
def test_bad_profile_stops_before_any_submission(tmp_path, mode):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(BAD_PROFILE)
    # sbatch and friends that only note that they were called (they shadow a real SLURM, if any).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    for name in ("sbatch", "squeue", "sacct", "sinfo", "scontrol", "srun"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexit 1\n')
        (bin_dir / name).chmod(0o755)
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = snakemake(workdir, "--profile", str(profile), mode, configs=[TINY, {"device": "cpu"}], check=False,
                       env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ProfileError in file"))
    assert lines[start + 1:start + 4] == BAD_PROFILE_MESSAGE
    assert not any("sbatch" in line for line in (calls.read_text().splitlines() if calls.exists() else []))
    assert not (workdir / ".snakemake" / "slurm_logs").exists()
    assert not (workdir / "results").exists()
