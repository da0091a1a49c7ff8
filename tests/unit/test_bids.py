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


# ---------------------------------------------------------------------------------------------------------
# the U-Net's training cohort, apart from the study cohort


@pytest.fixture(scope="module")
def default_config():
    from dlmi_workflow.config import load_config

    return load_config(REPO / "config" / "config.yaml", REPO / "workflow" / "schemas" / "config.schema.yaml")


def test_the_training_cohort_has_its_own_prefixed_labels(default_config):
    labels = bids.training_subjects(default_config)
    n = default_config["segmentation"]["unet"]["training_cohort"]["n_subjects"]
    assert len(labels) == n == 24 and labels[:2] == ["train001", "train002"] and labels[-1] == "train024"
    assert all(bids.is_label(label) for label in labels)
    assert not set(labels) & set(bids.study_subjects(default_config))


def seed_purposes() -> set[str]:
    """Every purpose string a script or dlmi module passes to dlmi.seeding (derive_seed, rng), plus those of
    the training stage (contrast draws, network initialisation, patches)."""
    call = re.compile(r"(?:derive_seed|rng)\(.*?\"(\w+)\"\)")
    found = {purpose for path in (REPO / "scripts").rglob("*.py") for purpose in call.findall(path.read_text())}
    assert found >= {"participant", "anatomy", "pet_motion", "simulate_mri", "simulate_ct", "simulate_pet"}
    return found | {"contrast", "unet", "train_unet", "patches"}


def derived_seeds(seed: int, labels, purposes) -> set[int]:
    from dlmi.seeding import derive_seed

    return {derive_seed(seed, label, purpose) for label in labels for purpose in purposes}


def test_no_seed_derived_for_a_training_subject_is_one_derived_for_a_study_subject(default_config):
    purposes = seed_purposes()
    study_labels, training_labels = list(bids.study_subjects(default_config)), bids.training_subjects(default_config)
    study = derived_seeds(default_config["cohort"]["seed"], study_labels, purposes)
    training = derived_seeds(bids.training_seed(default_config), training_labels, purposes)
    assert len(study) == len(study_labels) * len(purposes) and len(training) == len(training_labels) * len(purposes)
    assert not study & training
    assert bids.training_seed(default_config) != default_config["cohort"]["seed"]
    # the check can fail: a training cohort that reused a study label under the study seed would share seeds
    assert study & derived_seeds(default_config["cohort"]["seed"], study_labels[:1], purposes)


def test_the_training_label_prefix_uses_the_label_pattern():
    config = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    unet = config["properties"]["segmentation"]["properties"]["unet"]["properties"]
    assert unet["training_cohort"]["properties"]["label_prefix"]["pattern"] == f"^{bids.LABEL}$"
