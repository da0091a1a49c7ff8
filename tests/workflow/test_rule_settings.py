"""Each value in one place: every rule declares its own memory, wall time and threads, every per-subject rule
is in the job group `subject` (a renamed or new rule cannot silently fall out of it), the small group-level
jobs are local rules, memory grows with the grid, and storage.temp_raw marks the raw data temp()."""
import pytest
from conftest import REPO
from parsed import parse_workflow

from dlmi_workflow.cluster import grid_mem_mb

TINY = REPO / "config" / "tiny.yaml"
RAW = {"simulate_mri": "kspace.npz", "simulate_ct": "sinogram.npz", "simulate_pet": "sinogram.npz"}
LOCAL = {"make_participants", "describe_dataset", "gather_features", "gather_quality", "make_splits",
         "summarise_models"}
# Rules that hold no image of the anatomy grid: their memory does not grow with it.
TABLES_ONLY = {"make_participants", "describe_dataset", "gather_features", "gather_quality", "make_splits",
               "cross_validate", "cross_validate_cnn", "summarise_models"}  # the CNN's images: model.image_voxel_mm
THREADS = {"train_unet": 2, "cross_validate_cnn": 2}  # the two training jobs; every other job takes one core


@pytest.fixture(scope="module")
def rules():
    return parse_workflow()["rules"]


def test_every_per_subject_rule_is_in_the_subject_group(rules):
    # A training subject's simulation feeds train_unet, a job of the whole training cohort, which feeds every
    # study subject's segment_unet: in the group `subject` it would make packed groups depend on themselves.
    per_subject = {name for name, rule in rules.items() if "subject" in rule["wildcards"]}
    per_subject -= {"simulate_training_subject"}
    assert len(per_subject) == 14  # with the U-Net's segment_unet and a BIDS study's conform_t1w
    assert {name: rules[name]["group"] for name in per_subject} == dict.fromkeys(per_subject, "subject")
    assert {name for name, rule in rules.items() if rule["group"]} == per_subject


def test_every_rule_declares_its_resources(rules):
    for name, rule in rules.items():
        if name == "all":
            continue
        assert rule["threads"] == THREADS.get(name, 1), name
        assert isinstance(rule["resources"].get("mem_mb"), int), name
        assert isinstance(rule["resources"].get("runtime"), int), name


def test_small_group_level_jobs_run_locally(rules):
    assert {name for name, rule in rules.items() if rule["local"]} == LOCAL
    assert not any("subject" in rules[name]["wildcards"] for name in LOCAL)


def test_memory_grows_with_the_grid(rules, tmp_path):
    fine_config = tmp_path / "fine.yaml"
    fine_config.write_text("anatomy:\n  voxel_mm: 1.0\n")
    fine = parse_workflow(configfiles=[fine_config])["rules"]
    coarse = parse_workflow(configfiles=[TINY])["rules"]  # 4 mm
    for name, rule in rules.items():
        if name == "all":
            continue
        mem = rule["resources"]["mem_mb"]
        assert coarse[name]["resources"]["mem_mb"] == mem, name
        expected = mem if name in TABLES_ONLY else grid_mem_mb(mem, 1.0)
        assert fine[name]["resources"]["mem_mb"] == expected, name
    assert fine["register_t1"]["resources"]["mem_mb"] == 8 * rules["register_t1"]["resources"]["mem_mb"]


def temp_outputs(rules) -> set[str]:
    return {f"{name}:{out['path'].rsplit('_', 1)[-1]}" for name, rule in rules.items() for out in rule["output"]
            if out["temp"]}


def test_raw_data_is_temporary_only_with_storage_temp_raw(rules, tmp_path):
    assert temp_outputs(rules) == set()  # the default: storage.temp_raw false
    on = tmp_path / "temp-raw.yaml"
    on.write_text("storage:\n  temp_raw: true\n")
    assert temp_outputs(parse_workflow(configfiles=[on])["rules"]) == {f"{r}:{f}" for r, f in RAW.items()}
