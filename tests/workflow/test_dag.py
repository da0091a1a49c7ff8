"""Dry-run planning: every stage is in the DAG with the expected number of jobs."""
import json

import pytest
from conftest import REPO, snakemake

from dlmi_workflow.snakemake_interface import job_counts, listed_jobs

PER_SUBJECT = [
    "simulate_anatomy", "simulate_mri", "simulate_ct", "simulate_pet",
    "reconstruct_mri", "reconstruct_ct", "reconstruct_pet",
    "register_t1", "register_pet", "segment_t1", "extract_features", "assess_quality",
]  # and segment_unet once a U-Net checkpoint is shipped (resources/unet/unet.pt)
ONCE = ["build_template", "make_participants", "gather_features", "make_splits", "summarise_models",
        "gather_quality", "describe_dataset", "all"]
# (task diagnosis) x (3 classifiers) x (3 table feature sets), and the CNN on the image set with its images
MODEL_JOBS = {"cross_validate": 3 * 3, "cross_validate_cnn": 1, "gather_images": 1}


@pytest.mark.parametrize("n_subjects", [3, 20])
def test_dry_run_has_every_stage(tmp_path, n_subjects):
    # 3 subjects are too few for 5-fold cross-validation: the group models are left out, with a line
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[{"cohort": {"n_subjects": n_subjects}}])
    counts = job_counts(result.stdout + result.stderr)
    shipped = (REPO / "resources" / "unet" / "unet.pt").exists()
    models = n_subjects >= 10
    once = [rule for rule in ONCE if models or rule not in ("make_splits", "summarise_models")]
    expected = (dict.fromkeys(PER_SUBJECT + ["segment_unet"] * shipped, n_subjects) | dict.fromkeys(once, 1)
                | {"qc_figure": 7 + shipped} | (MODEL_JOBS if models else {}))
    assert counts == expected
    assert ("model: the group models are not planned" in result.stdout + result.stderr) == (not models)


def test_a_task_the_cohort_cannot_run_is_left_out_and_the_others_planned(tmp_path):
    # the default cohort has no MCI subjects: prognosis is named and left out, diagnosis runs
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[{"model": {"tasks": ["prognosis", "diagnosis"]}}])
    assert ("model: task prognosis: 0 sMCI subject(s), fewer than the 5 cross-validation folds (config key "
            "model.cv_folds); the task is not planned") in result.stdout + result.stderr
    counts = job_counts(result.stdout + result.stderr)
    assert counts["make_splits"] == 1 and counts["cross_validate"] == MODEL_JOBS["cross_validate"]
    assert "models/prognosis" not in result.stdout


def test_the_course_table_plans_both_tasks_with_every_feature_set(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[REPO / "config" / "course-table.yaml"])
    counts = job_counts(result.stdout + result.stderr)
    assert counts["make_splits"] == 2 and counts["cross_validate"] == 2 * 3 * 7
    # the CNN on the T1w and on the grey-matter map, for both tasks
    assert counts["cross_validate_cnn"] == 2 * 2 and counts["gather_images"] == 2


def test_without_a_checkpoint_the_study_runs_the_atlas_method_only(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[{
        "cohort": {"n_subjects": 3}, "segmentation": {"unet": {"checkpoint": str(tmp_path / "missing.pt")}}}])
    counts = job_counts(result.stdout + result.stderr)
    assert "segment_unet" not in counts and counts["segment_t1"] == 3 and counts["qc_figure"] == 7


def fake_checkpoint(folder, voxel_mm):
    """A checkpoint file and the metadata sidecar train_unet writes beside it (only the sidecar is read at
    parse time)."""
    (folder / "unet.pt").write_bytes(b"not read at parse time")
    (folder / "unet.json").write_text(json.dumps({"voxel_size_mm": [voxel_mm] * 3}))
    return str(folder / "unet.pt")


def test_a_checkpoint_for_another_voxel_size_is_left_out_with_a_warning(tmp_path):
    checkpoint = fake_checkpoint(tmp_path, 4.0)
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[{
        "cohort": {"n_subjects": 3}, "segmentation": {"unet": {"checkpoint": checkpoint}}}])
    output = result.stdout + result.stderr
    assert "segment_unet" not in job_counts(output)
    assert "the U-Net does not segment this study" in output and "anatomy.voxel_mm is 2.0" in output


def test_the_unet_method_with_a_checkpoint_for_another_voxel_size_stops_at_parse_time(tmp_path):
    checkpoint = fake_checkpoint(tmp_path, 4.0)
    result = snakemake(tmp_path, "--dry-run", check=False, configs=[{
        "segmentation": {"method": "unet", "unet": {"checkpoint": checkpoint}}}])
    assert result.returncode != 0
    assert "trained on [4.0, 4.0, 4.0] mm voxels and anatomy.voxel_mm is 2.0" in result.stdout + result.stderr


def test_the_unet_trained_in_the_study_adds_its_cohort_training_and_inference(tmp_path):
    """segmentation.unet.train: the training cohort's subjects, one training job, U-Net inference for every
    study subject and its QC figure; the atlas method's jobs stay."""
    unet = {"train": True, "training_cohort": {"n_subjects": 4}}
    result = snakemake(tmp_path, "--dry-run", "--cores", "2",
                       configs=[{"cohort": {"n_subjects": 3}, "segmentation": {"unet": unet}}])
    counts = job_counts(result.stdout + result.stderr)
    assert {k: counts[k] for k in ("simulate_training_subject", "train_unet", "segment_unet", "segment_t1",
                                   "qc_figure")} == {"simulate_training_subject": 4, "train_unet": 1,
                                                     "segment_unet": 3, "segment_t1": 3, "qc_figure": 8}


def test_the_unet_method_without_a_checkpoint_stops_at_parse_time(tmp_path):
    result = snakemake(tmp_path, "--dry-run", check=False, configs=[{"segmentation": {
        "method": "unet", "unet": {"checkpoint": str(tmp_path / "missing.pt")}}}])
    assert result.returncode != 0
    assert "segmentation.method: unet needs a checkpoint" in result.stdout + result.stderr


def test_excluded_subjects_leave_the_group_stage(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "2", configs=[{"cohort": {"exclude": ["002"]}}])
    counts = job_counts(result.stdout + result.stderr)
    assert counts["extract_features"] == 19  # only what the group stage needs is planned
    assert counts["simulate_anatomy"] == 19


@pytest.mark.parametrize("extra, line", [
    ({"cohort": {"n_subjets": 3}}, "config key 'cohort.n_subjets' is unknown (check its spelling)"),
    ({"cohort": {"n_subjects": "three"}}, "config key 'cohort.n_subjects': 'three' is not of type 'integer'"),
    ({"acquisition": {"mri": {"noise_sd": -1}}},
     "config key 'acquisition.mri.noise_sd': -1 is less than the minimum of 0"),
], ids=["unknown key", "wrong type", "out of range"])
def test_bad_config_stops_at_parse_time_naming_the_key(tmp_path, extra, line):
    result = snakemake(tmp_path, "--dry-run", configs=[extra], check=False)
    assert result.returncode != 0
    assert line in (result.stdout + result.stderr).splitlines()
    assert "Building DAG of jobs" not in result.stdout + result.stderr


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def planned_inputs(output: str) -> dict[str, set[str]]:
    """Rule name -> every input file of its planned jobs, parsed from a dry-run's job listing."""
    inputs = {}
    for job in listed_jobs(output):
        inputs.setdefault(job["rule"], set()).update(job["input"])
    return inputs


def test_no_rule_after_simulation_reads_ground_truth(tmp_path):
    """Features, models and every stage they build on see reconstructed data only; only the simulators and
    the quality rule (which scores against the truth) read desc-truth files."""
    # 4 subjects, 2 AD and 2 CN: enough for 2-fold cross-validation, so the models are planned
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configs=[{"cohort": {"n_subjects": 4}, "model": {"cv_folds": 2}}])
    inputs = planned_inputs(result.stdout)
    assert {"extract_features", "gather_features", "cross_validate", "segment_t1"} <= set(inputs)
    allowed = {"simulate_mri", "simulate_ct", "simulate_pet", "assess_quality", "qc_figure", "all"}
    for rule, files in inputs.items():
        if rule not in allowed:
            assert not [f for f in files if "truth" in f], rule
