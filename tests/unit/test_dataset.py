"""dlmi_workflow.dataset: a researcher's BIDS dataset discovered with pybids, one image chosen per subject by
the stated rule, groups from participants.tsv, and one line per problem (the rest of the cohort proceeds)."""
import json

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO

from dlmi_workflow import config as study_config
from dlmi_workflow import dataset
from dlmi_workflow.dataset import Scan

SCHEMA = study_config.load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def write_image(path, shape=(4, 4, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), str(path))


@pytest.fixture
def tree(tmp_path):
    """A small BIDS tree of 4x4x4 images with a problem of each kind."""
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for name in ["sub-01/anat/sub-01_T1w.nii.gz",
                 "sub-02/ses-a/anat/sub-02_ses-a_run-1_T1w.nii.gz", "sub-02/ses-a/anat/sub-02_ses-a_run-2_T1w.nii.gz",
                 "sub-02/ses-b/anat/sub-02_ses-b_T1w.nii.gz",
                 "sub-03/anat/sub-03_acq-fast_T1w.nii.gz", "sub-03/anat/sub-03_acq-mprage_T1w.nii.gz",
                 "sub-04/anat/sub-04_T1w.nii", "sub-05/anat/sub-05_T2w.nii.gz", "sub-06/anat/t1_mprage_T1w.nii.gz",
                 "sub-07/anat/sub-07_T1w.nii.gz", "derivatives/x/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz"]:
        write_image(root / name)
    (root / "participants.tsv").write_text("participant_id\tdx\n" + "".join(
        f"sub-{label}\t{dx}\n" for label, dx in
        [("01", "Dementia"), ("02", "Control"), ("03", "Control"), ("04", "MCI"), ("05", "Control"),
         ("06", "Control"), ("09", "Dementia")]))
    return root


def settings(root, **extra):
    diagnosis = {"column": "dx", "mapping": {"Control": "CN", "Dementia": "AD"}}
    return study_config.validate({"input": {"bids_dir": str(root), "diagnosis": diagnosis, **extra}}, SCHEMA)


def test_discovery_chooses_one_image_per_subject_and_names_every_problem_once(tree):
    found = dataset.discover(settings(tree))
    assert {s: scan.name() for s, scan in found.t1w.items()} == {
        "01": "sub-01_T1w.nii.gz", "02": "sub-02_ses-a_run-2_T1w.nii.gz", "03": "sub-03_acq-fast_T1w.nii.gz",
        "04": "sub-04_T1w.nii", "07": "sub-07_T1w.nii.gz"}
    assert found.groups == {"01": "AD", "02": "CN", "03": "CN"}
    assert found.problems == [
        "sub-06/anat/t1_mprage_T1w.nii.gz: not a BIDS name (left out)",
        "sub-05: no T1w image (query: datatype anat, suffix T1w, extension ['.nii', '.nii.gz']); left out",
        "sub-04: diagnosis 'MCI' in column 'dx' of participants.tsv is not in input.diagnosis.mapping (Control, "
        "Dementia); left out of the group stage",
        "sub-09: listed in participants.tsv (line 8) but has no T1w image used by the study",
        "sub-07: has images but no row in participants.tsv; left out of the group stage",
    ]
    assert found.choices == [
        "sub-02: 3 T1w images (sub-02_ses-a_run-1_T1w.nii.gz, sub-02_ses-a_run-2_T1w.nii.gz, sub-02_ses-b_T1w.nii.gz); "
        "using sub-02_ses-a_run-2_T1w.nii.gz (first session, last run (input.run))",
        "sub-03: 2 T1w images (sub-03_acq-fast_T1w.nii.gz, sub-03_acq-mprage_T1w.nii.gz); using "
        "sub-03_acq-fast_T1w.nii.gz (first session, last run (input.run))"]


def test_participant_selection_session_run_and_filter_file(tree, tmp_path):
    found = dataset.discover(settings(tree, participant_label=["02", "03", "08"], session="b"))
    assert sorted(found.t1w) == ["02"] and found.t1w["02"].session == "b"
    assert "sub-08: no such subject folder (input.participant_label names it)" in found.problems
    assert "sub-03: no T1w image in ses-b (input.session); it has no sessions" in found.problems
    assert not any("sub-01" in line or "sub-06" in line for line in found.problems)  # not selected: no line
    found = dataset.discover(settings(tree, exclude_participant_label=["01", "06"], run="first"))
    assert "01" not in found.t1w and found.t1w["02"].name() == "sub-02_ses-a_run-1_T1w.nii.gz"
    assert not any(line.startswith(("sub-01", "sub-06")) for line in found.problems)
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"t1w": {"acquisition": "mprage"}}))
    found = dataset.discover(settings(tree, bids_filter_file=str(filters)))
    assert list(found.t1w) == ["03"] and found.t1w["03"].name() == "sub-03_acq-mprage_T1w.nii.gz"
    filters.write_text(json.dumps({"t1w": {"acquisition": None}}))  # null: images without an acq- entity
    assert "03" not in dataset.discover(settings(tree, bids_filter_file=str(filters))).t1w


def test_choose_takes_the_named_session_and_the_first_or_last_run():
    scans = [Scan("1", s, r, f"/d/sub-1_ses-{s}_run-{r}_T1w.nii.gz") for s, r in [("b", 1), ("a", 2), ("a", 1)]]
    assert dataset.choose(scans, None, "last")[0] == scans[1]
    assert dataset.choose(scans, None, "first")[0] == scans[2]
    assert dataset.choose(scans, "b", "last")[0] == scans[0]
    assert dataset.choose(scans, "c", "last") == (None, "no T1w image in ses-c (input.session); it has ses-a, ses-b")
    assert dataset.choose(scans[:1], None, "last") == (scans[0], None)  # one image: nothing to say


@pytest.mark.parametrize("content,message", [
    (None, "file not found"), ("{not json", "not valid JSON"), ('{"bold": {}}', "unknown entry 'bold'"),
    ('{"t1w": 3}', 'expected {"t1w"')])
def test_a_bad_filter_file_names_the_key_and_the_file(tree, tmp_path, content, message):
    path = tmp_path / "filters.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(dataset.DatasetError, match=message) as err:
        dataset.discover(settings(tree, bids_filter_file=str(path)))
    assert str(err.value).startswith(f"config key 'input.bids_filter_file': {path}: ")


def test_a_folder_that_is_not_a_dataset_names_the_key(tmp_path):
    with pytest.raises(dataset.DatasetError, match=r"config key 'input.bids_dir': .*: no such folder"):
        dataset.discover(settings(tmp_path / "missing"))
    with pytest.raises(dataset.DatasetError, match=r"not a BIDS dataset \(no dataset_description.json"):
        dataset.discover(settings(tmp_path))


@pytest.mark.parametrize("table,line", [
    (None, "participants.tsv: file not found; no subject has a diagnosis"),
    ("participant_id\tgroup\nsub-01\tAD\n", "participants.tsv: no column 'dx' (input.diagnosis.column)"),
])
def test_without_a_usable_participants_table_no_subject_has_a_group(tree, table, line):
    (tree / "participants.tsv").unlink()
    if table is not None:
        (tree / "participants.tsv").write_text(table)
    found = dataset.discover(settings(tree))
    assert found.groups == {} and len(found.t1w) == 5
    assert any(line in problem for problem in found.problems), found.problems


def test_a_bids_study_leaves_subjects_out_by_participant_label_only(tree):
    with pytest.raises(study_config.ConfigError, match=r"input\.exclude_participant_label"):
        study_config.validate({"input": {"bids_dir": str(tree)}, "cohort": {"exclude": ["01"]}}, SCHEMA)


CN_AD = [{"group": "CN"}] * 5 + [{"group": "AD"}] * 5


def test_feature_sets_that_need_pet_are_dropped_without_pet():
    model = {"cv_folds": 5, "tasks": ["diagnosis"], "classifiers": {"linear_svm": {}, "cnn": {}},
             "feature_sets": {"t1": ["icv_ml"], "pet": ["suvr_temporal"], "both": ["icv_ml", "suvr_x"],
                              "age+pet_score": ["age", "svm_score:pet"], "image": ["image:T1w"]}}
    # each classifier on the kept sets of its kind: the CNN on the image set, the SVM on the table sets
    tables = ["t1", "pet", "both", "age+pet_score"]
    assert dataset.model_settings(model, has_pet=True, participants=CN_AD) == (
        {**model, "classifier_sets": {"linear_svm": tables, "cnn": ["image"]}}, [])
    kept, dropped = dataset.model_settings(model, has_pet=False, participants=CN_AD)
    assert kept == {**model, "feature_sets": {"t1": ["icv_ml"], "image": ["image:T1w"]},
                    "classifier_sets": {"linear_svm": ["t1"], "cnn": ["image"]}} and len(dropped) == 3
    assert dropped[0].startswith("feature set 'pet' (model.feature_sets) needs PET SUVR")
    assert dropped[2].startswith("feature set 'age+pet_score' (model.feature_sets) needs PET SUVR")


def test_a_task_without_enough_subjects_of_a_class_is_left_out_and_the_others_are_kept():
    model = {"cv_folds": 5, "tasks": ["prognosis", "diagnosis"], "feature_sets": {"t1": ["icv_ml"]},
             "classifiers": {"linear_svm": {}}}
    participants = CN_AD + [{"group": "sMCI"}] * 6 + [{"group": "pMCI"}] * 4
    kept, lines = dataset.model_settings(model, has_pet=True, participants=participants)
    assert kept["tasks"] == ["diagnosis"]
    assert lines == ["task prognosis: 4 pMCI subject(s), fewer than the 5 cross-validation folds (config key "
                     "model.cv_folds); the task is not planned"]
    kept, lines = dataset.model_settings(model, has_pet=True, participants=[{"age": 70}] * 10)
    assert kept["tasks"] == [] and lines[0] == "task prognosis: no participant has a 'group' value; the task is " \
                                               "not planned"


@pytest.mark.parametrize("sets, message", [
    ({"a": ["age", "svm_score:b"]}, "config key model.feature_sets.a: 'svm_score:b' scores 'b', which is not a "
                                    "feature set (a)"),
    ({"a": ["icv_ml"], "b": ["svm_score:a"], "c": ["age", "svm_score:b"]},
     "config key model.feature_sets.c: 'svm_score:b' scores a feature set that holds SVM scores itself; a "
     "score's feature set must name columns only"),
])
def test_a_score_of_an_unknown_or_scored_feature_set_is_refused(sets, message):
    model = {"cv_folds": 2, "tasks": ["diagnosis"], "feature_sets": sets}
    with pytest.raises(ValueError) as err:
        dataset.model_settings(model, has_pet=True, participants=CN_AD)
    assert str(err.value) == message
