"""Defaults live in the config schema: where the science library gives its dataclasses defaults (so that
they can be built without a config), they are the schema's, key for key. (dlmi reads no schema and imports
no dlmi_workflow; this test reads the schema and compares.)"""
from dataclasses import fields
from pathlib import Path

import yaml

from dlmi.sim.cohort import Cohort, Effects

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def defaults(*keys):
    node = yaml.safe_load(SCHEMA.read_text())
    for key in keys:
        node = node["properties"][key]
    return {name: spec["default"] for name, spec in node["properties"].items() if "default" in spec}


def test_cohort_defaults_are_the_schema_defaults():
    schema, cohort = defaults("cohort"), Cohort()
    assert (cohort.n_subjects, cohort.seed, cohort.ad_fraction, cohort.mci_fraction) == (
        schema["n_subjects"], schema["seed"], schema["ad_fraction"], schema["mci_fraction"])
    assert [cohort.age_min, cohort.age_max] == schema["age_range"]
    assert cohort.amyloid_positive == tuple(defaults("cohort", "amyloid_positive").values())
    assert cohort.conversion_risk == tuple(defaults("cohort", "conversion_risk").values())


def test_effect_defaults_are_the_schema_defaults():
    schema, effects = defaults("anatomy", "effects"), Effects()
    assert set(schema) == {f.name for f in fields(Effects)}
    for name, value in schema.items():
        assert getattr(effects, name) == (tuple(value) if isinstance(value, list) else value), name


def test_the_training_cohort_defaults_keep_it_apart_from_every_study_seed():
    """The U-Net's training cohort (segmentation.unet.training_cohort) has a seed of its own: not the default
    study's, nor the seeds 1, 2 and 3 the U-Net is accepted on (issue 9), and labels no study subject has."""
    training, study = defaults("segmentation", "unet", "training_cohort"), defaults("cohort")
    assert training["seed"] not in {study["seed"], 1, 2, 3}
    assert not training["label_prefix"].isdigit()


def test_the_unet_defaults_are_written_in_the_schema_only():
    """No script repeats the default checkpoint or training seed: they come from the config."""
    unet = defaults("segmentation", "unet")
    seed = defaults("segmentation", "unet", "training_cohort")["seed"]
    assert unet["checkpoint"].startswith("resources/")
    for path in (SCHEMA.parents[2] / "scripts").rglob("*.py"):
        text = path.read_text()
        assert unet["checkpoint"] not in text and str(seed) not in text, path


def test_the_default_study_contrast_is_inside_the_unet_training_ranges():
    """The U-Net segments the study's images: their default sequence (acquisition.mri) is one the training
    draws (dlmi.sim.contrast's t1w_ir family)."""
    from dlmi.sim.contrast import FAMILIES, TRAINING_FAMILIES

    mri = defaults("acquisition", "mri")
    family = FAMILIES["t1w_ir"]
    assert mri["sequence"] == family["sequence"] and "t1w_ir" in TRAINING_FAMILIES
    for key in ("tr_ms", "ti_ms", "te_ms"):
        low, high = family[key]
        assert low <= mri[key] <= high, key
