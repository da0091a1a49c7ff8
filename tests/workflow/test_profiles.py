"""The profiles under config/profiles: they parse, group each subject's jobs into one cluster job, layer
(slurm, then slurm-gpu on top), name only rules that exist, and hold no per-rule copy of the rules'
resources; a profile whose resources the SLURM executor would ignore (or that asks for a GPU under device:
cpu) stops the run at parse time, before anything is submitted; and `make plan` estimates from the
resources the profiles give."""
import os

import pytest
import yaml
from parsed import parse_workflow
from workflow_runner import REPO, snakemake

from dlmi_workflow import planning
from dlmi_workflow.cluster import profile_rule_errors, requests_gpu
from dlmi_workflow.snakemake_interface import job_counts, listed_jobs

PROFILES = REPO / "config" / "profiles"
SLURM, SLURM_GPU = [str(PROFILES / "slurm")], ["--profile", str(PROFILES / "slurm-gpu")]
TINY = REPO / "config" / "tiny.yaml"
GROUP_LEVEL_JOBS = 27  # build_template, make_participants, describe_dataset, gather_features, gather_quality,
#                      make_splits, 9 cross_validate, gather_images, cross_validate_cnn, summarise_models,
#                      8 qc_figure, train_unet
PER_SUBJECT_JOBS = 6 * 13  # 6 subjects x 13 rules (in job group `subject`)
TRAINING_JOBS = 2  # the U-Net smoke test's training subjects: one simulate_training_subject each, not grouped
LOCAL_JOBS = 6  # make_participants, describe_dataset, gather_features, gather_quality, make_splits,
#                summarise_models: not submitted
GPU_RULES = {"simulate_mri", "simulate_ct", "simulate_pet", "reconstruct_mri", "reconstruct_ct", "reconstruct_pet",
             "register_t1", "register_pet", "segment_t1", "train_unet", "segment_unet", "cross_validate_cnn"}


@pytest.fixture(scope="module")
def rules():
    return parse_workflow()["rules"]


def submissions(output: str, rules: dict) -> tuple[int, int]:
    """(group jobs, ungrouped jobs other than `all` and the local rules' jobs) in a dry-run's job list: what
    would be submitted. (A dry-run lists local rules as 'rule' too: which they are comes from the workflow.)"""
    jobs = listed_jobs(output)
    groups = {job["group_job"] for job in jobs if job["group_job"] is not None}
    singles = [job for job in jobs if job["group_job"] is None and job["rule"] != "all"
               and not rules[job["rule"]]["local"]]
    return len(groups), len(singles)


@pytest.mark.parametrize("profiles", [SLURM, SLURM + SLURM_GPU], ids=["slurm", "slurm+slurm-gpu"])
def test_cluster_profile_submits_one_job_per_subject(tmp_path, rules, profiles):
    result = snakemake(tmp_path, "--profile", *profiles, "--dry-run", configs=[TINY])
    output = result.stdout + result.stderr
    assert sum(job_counts(output).values()) == PER_SUBJECT_JOBS + TRAINING_JOBS + GROUP_LEVEL_JOBS + 1
    assert submissions(output, rules) == (6, TRAINING_JOBS + GROUP_LEVEL_JOBS - LOCAL_JOBS)


def test_gpu_profile_layers_gpus_on_the_rules_resources(tmp_path, rules):
    """slurm-gpu given after slurm: the GPU rules ask for one GPU, and every job asks for the memory, wall
    time and threads its rule declares (nothing copied into the profiles)."""
    result = snakemake(tmp_path, "--profile", *SLURM, *SLURM_GPU, "--dry-run", configs=[TINY])
    jobs = [job for job in listed_jobs(result.stdout) if job["rule"] != "all"]
    tiny_rules = parse_workflow(configfiles=[TINY])["rules"]
    assert {job["rule"] for job in jobs if requests_gpu(job["resources"])} == GPU_RULES
    for job in jobs:
        declared = tiny_rules[job["rule"]]["resources"]
        assert {k: job["resources"][k] for k in ("mem_mb", "runtime")} == {
            k: declared[k] for k in ("mem_mb", "runtime")}, job["rule"]
    alone = snakemake(tmp_path, "--profile", *SLURM, "--dry-run", configs=[TINY])
    assert not any(requests_gpu(job["resources"]) for job in listed_jobs(alone.stdout))


def test_shipped_profiles_name_only_existing_rules_and_copy_no_resources(rules):
    for path in sorted(PROFILES.glob("*/config.yaml")) + sorted((REPO / "workflow").glob("profiles/*/config.yaml")):
        profile = yaml.safe_load(path.read_text()) or {}
        assert profile_rule_errors(profile, list(rules)) == [], path
        assert "groups" not in profile, path  # each rule says its group itself
        for rule, resources in (profile.get("set-resources") or {}).items():
            assert set(resources) == {"gpu"}, f"{path}: {rule}"  # memory and time live in the rules
        assert not {"mem_mb", "runtime"} & set(profile.get("default-resources") or {}), path


def row(table: str, rule: str) -> list[str]:
    """The words of the row of `rule` in the table `make plan` prints."""
    return next(words for words in map(str.split, table.splitlines()) if words and words[0] == rule)


def test_a_site_profile_overrides_a_rule_and_make_plan_estimates_from_it(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.yaml").write_text("set-resources:\n  register_t1: {mem_mb: 6000, runtime: 30}\n")
    args = ["--configfile", str(REPO / "config" / "config.yaml"), str(TINY), "--benchmarks", str(tmp_path / "none")]
    planning.main([*args, "--profile", str(PROFILES / "slurm"), "--profile", str(site)])
    table = capsys.readouterr().out
    register_t1 = row(table, "register_t1")
    assert register_t1[1:3] == ["6", "1.8e+03"]  # 6 jobs of 30 min each (the site's), not the rule's 15
    assert register_t1[-2:] == ["requested", "resources"] and "6e+03" in register_t1  # and the site's memory
    planning.main(args)  # no profile: the rule's own values
    register_t1 = row(capsys.readouterr().out, "register_t1")
    assert register_t1[1:3] == ["6", "900"]


def test_a_later_profile_that_drops_the_gpu_lines_stops_the_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.yaml").write_text("set-resources:\n  register_t1: {mem_mb: 6000}\n")
    result = snakemake(tmp_path, "--profile", *SLURM, *SLURM_GPU, "--profile", str(site), "--dry-run",
                       configs=[TINY], check=False)
    assert result.returncode == 1
    assert ("resources: gpu=1 limits the GPU jobs, but no rule asks for a GPU: a profile given after "
            "config/profiles/slurm-gpu replaced its set-resources; repeat its gpu lines in that profile"
            ) in (result.stdout + result.stderr).splitlines()


def test_group_components_pack_several_subjects_per_job(tmp_path, rules):
    result = snakemake(tmp_path, "--profile", *SLURM, "--dry-run", "--group-components", "subject=4", configs=[TINY])
    # 6 subjects: 4 + 2
    assert submissions(result.stdout + result.stderr, rules) == (2, TRAINING_JOBS + GROUP_LEVEL_JOBS - LOCAL_JOBS)


def test_local_profile_dry_run(tmp_path):
    result = snakemake(tmp_path, "--profile", str(PROFILES / "local"), "--dry-run", configs=[TINY])
    assert sum(job_counts(result.stdout + result.stderr).values()) == (PER_SUBJECT_JOBS + TRAINING_JOBS
                                                                      + GROUP_LEVEL_JOBS + 1)


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
  cross_validate:
    mem_gb: 8
  segment_t1:
    gpu: 1
"""
BAD_PROFILE_MESSAGE = [
    ("set-resources: rule 'register_t1' asks for resource 'gpus', which the SLURM executor does not read "
    "(did you mean 'gpu'?)"),
    ("set-resources: rule 'cross_validate' asks for resource 'mem_gb', which the SLURM executor does not read "
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
