"""Defaults live in the config schema: where the science library gives its dataclasses defaults (so that
they can be built without a config), they are the schema's, key for key. (dlmi reads no schema and imports
no dlmi_workflow; this test reads the schema and compares.)"""
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
    assert (cohort.n_subjects, cohort.seed, cohort.ad_fraction) == (
        schema["n_subjects"], schema["seed"], schema["ad_fraction"])
    assert [cohort.age_min, cohort.age_max] == schema["age_range"]


def test_effect_defaults_are_the_schema_defaults():
    schema, effects = defaults("anatomy", "effects"), Effects()
    assert list(effects.hippocampal_atrophy) == schema["hippocampal_atrophy"]
    assert (effects.ventricle_enlargement, effects.fdg_hypometabolism, effects.cognitive_score_drop) == (
        schema["ventricle_enlargement"], schema["fdg_hypometabolism"], schema["cognitive_score_drop"])
