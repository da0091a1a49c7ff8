"""dlmi_workflow.bids: subjects from one source, BIDS labels and paths."""
import re

import pytest
import yaml
from conftest import REPO

from dlmi_workflow import bids


def test_paths_follow_bids_with_and_without_a_session():
    assert bids.bids_path("results", "anat", "desc-recon_T1w.nii.gz", subject="001") == \
        "results/sub-001/anat/sub-001_desc-recon_T1w.nii.gz"
    assert bids.bids_path("results", "pet", "pet.nii.gz", subject="ab12", session="01") == \
        "results/sub-ab12/ses-01/pet/sub-ab12_ses-01_pet.nii.gz"
    assert bids.bids_path("out", "", "features.tsv", subject="{subject}") == "out/sub-{subject}/sub-{subject}_features.tsv"


@pytest.mark.parametrize("label,ok", [("001", True), ("ab12C", True), ("1000", True), ("01-a", False),
                                      ("a_b", False), ("", False), ("../003", False)])
def test_labels_are_alphanumeric(label, ok):
    assert bids.is_label(label) is ok


def test_a_simulated_study_has_zero_padded_subjects_and_no_sessions():
    assert bids.study_subjects({"cohort": {"n_subjects": 3}}) == {"001": (), "002": (), "003": ()}
    assert list(bids.study_subjects({"cohort": {"n_subjects": 1000}}))[-1] == "1000"
    assert bids.simulated_subjects(12)[:2] == ["001", "002"]


def test_the_schemas_use_the_same_label_pattern():
    config = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    participants = yaml.safe_load((REPO / "workflow" / "schemas" / "participants.schema.yaml").read_text())
    exclude = config["properties"]["cohort"]["properties"]["exclude"]["items"]["pattern"]
    assert exclude == f"^{bids.LABEL}$"
    assert participants["properties"]["participant_id"]["pattern"] == f"^sub-{bids.LABEL}$"


def test_no_other_file_hard_codes_a_subject_label_pattern():
    """The label pattern lives in dlmi_workflow.bids (and the two schemas, checked above)."""
    pattern = re.compile(r"\[0-9\]\{3,4\}|sub-\(?\[0-9")
    for path in [*(REPO / "scripts").rglob("*.py"), *(REPO / "workflow").rglob("*.smk")]:
        assert not pattern.search(path.read_text()), path
