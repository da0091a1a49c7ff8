"""A study of a researcher's own BIDS data (input.bids_dir): the dataset of tests/bids_data.py (real images
moved by known transforms, oblique, LPS, 4-D, sessions and runs, and a problem of each kind) goes through
the analysis rules of a simulated study at the tiny study's grid, without a simulation job; and a simulated
study's reconstructions read as a BIDS dataset give the same features, byte for byte."""
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_data import TRANSFORMS, build
from conftest import REPO, snakemake
from workflow_runner import job_counts

from dlmi.register import itk

TINY = REPO / "config" / "tiny.yaml"
NO_UNET = {"segmentation": {"unet": {"train": False}}}


@pytest.fixture(scope="module")
def bids_study(tmp_path_factory):
    """The dataset, its dry-run and its run (--keep-going: sub-05's image may fail its segmentation, and the
    others proceed)."""
    workdir = tmp_path_factory.mktemp("bids")
    build(workdir / "rawdata")
    settings = {"input": {"bids_dir": "rawdata", "diagnosis": {"column": "diagnosis"}}, **NO_UNET}
    configs = [TINY, settings]
    plan = snakemake(workdir, "--dry-run", "--cores", "2", configs=configs)
    run = snakemake(workdir, "--cores", "2", "--keep-going", configs=configs, check=False)
    return workdir, plan, run


def test_discovery_plans_the_analysis_of_each_usable_subject_and_no_simulation(bids_study):
    _, plan, _ = bids_study
    output = plan.stdout + plan.stderr
    counts = job_counts(output)
    assert counts["conform_t1w"] == counts["register_t1"] == counts["extract_features"] == 6  # 01-05, 08
    assert not any(rule.startswith(("simulate_", "reconstruct_", "assess_", "register_pet")) for rule in counts)
    problems = [line.split("input: ", 1)[1] for line in output.splitlines() if line.startswith("input: ")]
    assert problems == [
        "sub-03: 3 T1w images (sub-03_ses-01_run-1_T1w.nii.gz, sub-03_ses-01_run-2_T1w.nii.gz, "
        "sub-03_ses-02_run-1_T1w.nii.gz); using sub-03_ses-01_run-2_T1w.nii.gz (first session, last run (input.run))",
        "sub-07/anat/T1w.nii.gz: not a BIDS name (left out)",
        "sub-09: no T1w image (query: datatype anat, suffix T1w, extension ['.nii', '.nii.gz']); left out",
        "sub-05: diagnosis 'MCI' in column 'diagnosis' of participants.tsv is not in input.diagnosis.mapping "
        "(AD, CN); left out of the group stage",
        "sub-06: listed in participants.tsv (line 7) but has no T1w image used by the study",
        "sub-08: has images but no row in participants.tsv; left out of the group stage",
    ]
    assert "model: feature set 'pet_suvr' (model.feature_sets) needs PET SUVR" in output


def test_scans_are_conformed_to_the_study_grid_with_a_sidecar(bids_study):
    workdir, _, _ = bids_study
    for subject in ("01", "02", "03", "04", "08"):
        img = nib.load(workdir / f"results/sub-{subject}/anat/sub-{subject}_desc-preproc_T1w.nii.gz")
        assert img.ndim == 3 and nib.aff2axcodes(img.affine) == ("R", "A", "S")
        np.testing.assert_allclose(img.affine[:3, :3], np.diag([4.0] * 3))  # the tiny study's 4 mm
    sidecar = json.loads((workdir / "results/sub-01/anat/sub-01_desc-preproc_T1w.json").read_text())
    assert sidecar["Resampled"] and sidecar["SkullStripped"] and sidecar["SourceObliquityDegrees"] > 5
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert json.loads((workdir / "results/sub-02/anat/sub-02_desc-preproc_T1w.json").read_text())[
        "SourceAxisCodes"] == "LPS"
    assert json.loads((workdir / "results/sub-03/anat/sub-03_desc-preproc_T1w.json").read_text())["Sources"] == [
        "bids:raw:sub-03/ses-01/anat/sub-03_ses-01_run-2_T1w.nii.gz"]
    # the derivatives another BIDS app reads: a sidecar per image, Sources as BIDS URIs, the raw dataset linked
    description = json.loads((workdir / "results/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "dlmi-workflow"
    assert description["DatasetLinks"] == {"raw": str(workdir / "rawdata")}
    probseg = json.loads((workdir / "results/sub-01/anat/sub-01_label-GM_probseg.json").read_text())
    assert "bids::sub-01/anat/sub-01_desc-preproc_T1w.nii.gz" in probseg["Sources"]
    images = list((workdir / "results").glob("sub-0[1-4]/**/*.nii.gz"))
    assert len(images) > 20 and all(p.with_name(p.name[:-7] + ".json").exists() for p in images)


def test_registration_recovers_the_known_transforms(bids_study):
    """template -> scan point maps against the transforms the scans were made with, over the MNI brain: the
    mean error stays under 3 mm (3/4 of a 4 mm voxel; the scans' smooth warp alone moves points by about
    2 mm), where the identity is 9-20 mm off."""
    from nilearn import datasets

    workdir, _, _ = bids_study
    mask = datasets.load_mni152_brain_mask(resolution=2)
    voxels = np.argwhere(mask.get_fdata() > 0.5)
    points = mask.affine @ np.c_[voxels, np.ones(len(voxels))].T
    for subject, truth in TRANSFORMS.items():
        found = itk.read_transform(workdir / f"results/sub-{subject}/anat/sub-{subject}_from-T1w_to-template_mode-image_xfm.txt")
        error = np.linalg.norm((found @ points - truth @ points)[:3], axis=0)
        identity = np.linalg.norm((points - truth @ points)[:3], axis=0)
        assert error.mean() < 3.0 and error.max() < 7.0, (subject, error.mean(), error.max())
        assert identity.mean() > 9.0  # the test would catch a registration that did nothing


def test_the_group_stage_runs_on_the_subjects_with_a_mapped_diagnosis(bids_study):
    workdir, _, run = bids_study
    results = workdir / "results"
    participants = pd.read_csv(results / "participants.tsv", sep="\t")
    assert participants.to_dict("list") == {"participant_id": ["sub-01", "sub-02", "sub-03", "sub-04"],
                                            "group": ["AD", "CN", "CN", "AD"]}
    features = pd.read_csv(results / "group" / "features.tsv", sep="\t")
    assert list(features.participant_id) == list(participants.participant_id)
    assert not any(c.startswith("suvr_") for c in features.columns)
    metrics = pd.read_csv(results / "group" / "metrics.tsv", sep="\t")
    assert set(metrics.features) == {"t1_volumes", "t1_image"}  # the CNN reads the conformed scans too
    assert set(metrics.model[metrics.features == "t1_image"]) == {"cnn"}
    assert (results / "sub-08" / "sub-08_features.tsv").exists()  # no participants row: features only
    assert not list(results.glob("**/*desc-truth*")) and not (results / "group" / "recon_quality.tsv").exists()
    # Nothing fails but, on some machines, sub-05's segmentation: nibabel's low-resolution anatomy at 4 mm
    # has tissue means within a few percent of each other, and whether they come out in the T1-weighted order
    # depends on the CPU's floating-point paths (seen on two VMs). If it fails, it fails with one clear line
    # and the group stage (sub-05 is outside it) still runs.
    logs = workdir / "logs"
    failed = {p.relative_to(logs).with_suffix("").as_posix() for p in logs.rglob("*.log") if "ERROR" in p.read_text()}
    assert failed <= {"segment_t1/sub-05"}
    assert (run.returncode != 0) == bool(failed)
    if failed:
        last = (workdir / "logs" / "segment_t1" / "sub-05.log").read_text().strip().splitlines()[-1]
        assert "sub-05_desc-preproc_T1w.nii.gz: tissue means must increase CSF < GM < WM" in last


def test_a_new_input_setting_reruns_the_conformed_scans_and_what_follows(bids_study):
    workdir, _, _ = bids_study
    settings = {"input": {"bids_dir": "rawdata", "diagnosis": {"column": "diagnosis"}, "n4": False}, **NO_UNET}
    plan = snakemake(workdir, "--dry-run", "--cores", "2", configs=[TINY, settings])
    counts = job_counts(plan.stdout + plan.stderr)
    assert counts["conform_t1w"] == counts["register_t1"] == 6
    assert not {"build_template", "describe_dataset", "make_participants"} & set(counts)


def test_a_simulated_studys_reconstructions_read_as_bids_give_the_same_features(tiny_study, tmp_path):
    """The seam: the tiny study's reconstructed T1w images, laid out as a BIDS dataset (no N4, not
    skull-stripped: a conformed copy is then the same image), give byte-identical features."""
    study, _ = tiny_study
    raw = tmp_path / "rawdata"
    subjects = ["001", "002"]
    for s in subjects:
        (raw / f"sub-{s}" / "anat").mkdir(parents=True)
        shutil.copy(study / f"results/sub-{s}/anat/sub-{s}_desc-recon_T1w.nii.gz",
                    raw / f"sub-{s}/anat/sub-{s}_T1w.nii.gz")
    shutil.copy(study / "results/participants.tsv", raw / "participants.tsv")
    (raw / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    settings = {"input": {"bids_dir": str(raw), "n4": False, "skull_stripped": "no"}, **NO_UNET}
    targets = [f"results/sub-{s}/sub-{s}_features.tsv" for s in subjects]
    snakemake(tmp_path, "--cores", "2", *targets, configs=[TINY, settings])
    for target in targets:
        bids = (tmp_path / target).read_text().splitlines()
        simulated = (study / target).read_text().splitlines()
        columns = bids[0].split("\t")
        assert simulated[0].split("\t")[:len(columns)] == columns  # the simulated study adds PET SUVR
        assert simulated[1].split("\t")[:len(columns)] == bids[1].split("\t")


@pytest.mark.parametrize("participants", [None, "participant_id\tgroup\nsub-01\tCN\nsub-02\tCN\n"])
def test_without_both_groups_the_study_stops_at_the_features(tmp_path, participants):
    """No participants.tsv, or one group only: every subject is analysed up to the group features table, and
    no group model is planned (a dry-run, which reads no image)."""
    raw = tmp_path / "rawdata"
    for label in ("01", "02"):
        (raw / f"sub-{label}" / "anat").mkdir(parents=True)
        (raw / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz").touch()
    (raw / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    if participants:
        (raw / "participants.tsv").write_text(participants)
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configs=[TINY, {"input": {"bids_dir": str(raw)}},
                                                                       NO_UNET])
    output = result.stdout + result.stderr
    counts = job_counts(output)
    assert counts["extract_features"] == 2 and counts["gather_features"] == 1 and "cross_validate" not in counts
    assert "model: the group models are not planned" in output

