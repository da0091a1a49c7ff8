import copy
import os
import subprocess
import sys

import numpy as np
import pytest

from dlmi_workflow.config import ConfigError, load_config, load_yaml, tissue_signals, validate


@pytest.fixture(scope="module")
def schema(repo):
    return load_yaml(repo / "workflow/schemas/config.schema.yaml")


@pytest.fixture(scope="module")
def default(repo):
    return load_yaml(repo / "config/config.yaml")


def test_every_named_config_is_valid(repo, schema):
    names = sorted(path.name for path in (repo / "config").glob("*.yaml"))
    assert {"config.yaml", "tiny.yaml", "train-unet.yaml", "full.yaml"} <= set(names)
    for name in names:
        config = load_config(repo / "config" / name, repo / "workflow/schemas/config.schema.yaml")
        assert config["cohort"]["n_subjects"] >= 1


def test_defaults_fill_missing_keys(schema):
    config = validate({}, schema)
    assert config["cohort"]["n_subjects"] == 20
    assert config["acquisition"]["pet"]["voxel_mm"] == 4.0
    assert config["model"]["cv_folds"] == 5


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("cohort", "n_subjects"), 0, "config key 'cohort.n_subjects': 0 is less than the minimum of 1"),
        (("cohort", "n_subjects"), "20", "config key 'cohort.n_subjects': '20' is not of type 'integer'"),
        (("cohort", "ad_fraction"), 1.5, "config key 'cohort.ad_fraction': 1.5 is greater than the maximum of 1"),
        (("acquisition", "mri", "noise_sd"), -0.1,
         "config key 'acquisition.mri.noise_sd': -0.1 is less than the minimum of 0"),
        (("device",), "gpu", "config key 'device': 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
        (("cohort", "age_range"), [80, 60], "config key 'cohort.age_range': minimum 80 is above maximum 60"),
        (("acquisition", "pet", "voxel_mm"), 6.0,
         "config key 'acquisition.pet.voxel_mm': 6.0 is not an integer multiple of anatomy.voxel_mm (4.0)"),
    ],
)
def test_bad_values_name_the_key(schema, default, path, value, message):
    config = copy.deepcopy(default)
    if path == ("acquisition", "pet", "voxel_mm"):
        config["anatomy"]["voxel_mm"] = 4.0
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == message


@pytest.mark.parametrize("where", [(), ("cohort",), ("acquisition", "ct")])
def test_unknown_key_is_named(schema, default, where):
    config = copy.deepcopy(default)
    node = config
    for key in where:
        node = node[key]
    node["n_subjcts"] = 3
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    dotted = ".".join([*where, "n_subjcts"])
    assert str(err.value) == f"config key '{dotted}' is unknown (check its spelling)"


def test_file_errors_name_the_file(tmp_path, repo):
    bad = tmp_path / "study.yaml"
    bad.write_text("cohort:\n  n_subjects: 0\n")
    with pytest.raises(ConfigError, match=r"study.yaml: config key 'cohort.n_subjects'"):
        load_config(bad, repo / "workflow/schemas/config.schema.yaml")


def test_yaml_python_object_tags_are_refused(tmp_path, repo):
    evil = tmp_path / "study.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f"cohort:\n  seed: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError) as err:
        load_config(evil, repo / "workflow/schemas/config.schema.yaml")
    assert str(err.value) == (f"{evil}: line 2: YAML tag '!!python/object/apply:os.system' is not allowed "
                              "(only plain values: mappings, lists, strings, numbers, booleans)")
    assert not marker.exists()
    evil.write_text("output_dir: !!python/name:os.system\n")
    with pytest.raises(ConfigError, match=r"line 1: YAML tag '!!python/name:os.system' is not allowed"):
        load_yaml(evil)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("cohort:\n  age_range: [55, 90\n  seed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(bad)
    assert str(err.value) == f"{bad}: not valid YAML (line 3: expected ',' or ']', but got ':')"


@pytest.mark.parametrize("key", ["registration.t1_to_template", "registration.t1_to_template.nonlinear",
                                 "registration.pet_to_t1"])
def test_each_pyramid_needs_one_iteration_count_per_level(schema, default, key):
    config = copy.deepcopy(default)
    pyramid = config
    for part in key.split("."):
        pyramid = pyramid[part]
    pyramid["levels"], pyramid["iterations"] = [4, 2], [10]
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == f"config key '{key}.iterations': needs one entry per level (2 levels, 1 entries)"


@pytest.mark.parametrize("label", ["abc", "7", "021"])
def test_excluded_subjects_must_be_labels_of_the_cohort(schema, default, label):
    """'7' is not subject 007 (it would exclude nobody); a letter label is not a simulated subject."""
    config = copy.deepcopy(default)
    config["cohort"]["exclude"] = ["003", label]
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == f"config key 'cohort.exclude': subject {label} is not in the cohort of 20 (001, 002, 003, ...)"
    config["cohort"]["exclude"] = ["003", "020"]
    validate(config, schema)


# ---------------------------------------------------------------------------------------------------------
# the MRI contrast must suit the segmentation method


@pytest.mark.parametrize("mri, message", [
    ({"sequence": "spin_echo", "tr_ms": 4000.0, "te_ms": 100.0},
     ("config keys 'acquisition.mri.sequence', 'acquisition.mri.tr_ms', 'acquisition.mri.te_ms': spin_echo with "
      "TR 4000 ms, TE 100 ms is not T1-weighted (pure-tissue signals CSF 0.584, GM 0.259, WM 0.16); "
      "segmentation.method 'atlas' needs CSF < GM < WM")),
    ({"ti_ms": 600.0},  # inversion recovery nulling white matter
     ("config keys 'acquisition.mri.sequence', 'acquisition.mri.tr_ms', 'acquisition.mri.te_ms', "
      "'acquisition.mri.ti_ms': inversion_recovery with TR 2000 ms, TE 4 ms, TI 600 ms is not T1-weighted "
      "(pure-tissue signals CSF 0.112, GM 0.0807, WM 0.00539); segmentation.method 'atlas' needs CSF < GM < WM")),
])
def test_a_contrast_that_is_not_t1_weighted_is_refused_for_the_atlas_segmentation(schema, default, mri, message):
    config = copy.deepcopy(default)
    config["acquisition"]["mri"].update(mri)
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == message


@pytest.mark.parametrize("mri", [
    {"sequence": "spin_echo", "tr_ms": 500.0, "te_ms": 15.0},  # the textbook T1-weighted spin echo
    {"sequence": "inversion_recovery", "tr_ms": 2000.0, "te_ms": 4.0, "ti_ms": 900.0},  # MPRAGE-like default
])
def test_a_t1_weighted_contrast_is_accepted(schema, default, mri):
    config = copy.deepcopy(default)
    config["acquisition"]["mri"].update(mri)
    assert validate(config, schema)["segmentation"]["method"] == "atlas"
    del config["segmentation"]
    assert validate(config, schema)["segmentation"]["method"] == "atlas"  # the default


def test_the_unet_takes_any_contrast_and_other_methods_are_unknown(schema, default):
    config = copy.deepcopy(default)
    config["acquisition"]["mri"].update({"sequence": "spin_echo", "tr_ms": 4000.0, "te_ms": 100.0})  # T2w
    config["segmentation"]["method"] = "unet"
    assert validate(config, schema)["segmentation"]["method"] == "unet"
    config["segmentation"]["method"] = "fast"
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == "config key 'segmentation.method': 'fast' is not one of ['atlas', 'unet']"


def test_the_unet_keys_have_defaults(schema):
    unet = validate({}, schema)["segmentation"]["unet"]
    assert unet["training_cohort"] == {"n_subjects": 24, "seed": 9001, "label_prefix": "train"}
    assert unet["checkpoint"] == "resources/unet/unet.pt" and unet["train"] is False and unet["device"] == "study"
    assert (unet["epochs"], unet["batch_size"], unet["patch_size"], unet["learning_rate"]) == (20, 2, [64, 64, 64], 0.001)


@pytest.mark.parametrize("study, training, message", [
    ({"seed": 9001}, {},
     "config keys 'segmentation.unet.training_cohort.seed' and 'cohort.seed': the training cohort's seed 9001 is "
     "the study's; the U-Net must be trained on other subjects"),
    ({"seed": 5}, {"seed": 5, "label_prefix": "other"},
     "config keys 'segmentation.unet.training_cohort.seed' and 'cohort.seed': the training cohort's seed 5 is "
     "the study's; the U-Net must be trained on other subjects"),
    ({"n_subjects": 1000}, {"label_prefix": "0", "n_subjects": 5},
     "config keys 'segmentation.unet.training_cohort.label_prefix' and 'cohort.n_subjects': training subject "
     "0001 is also a study subject (5 shared); the U-Net must be trained on other subjects"),
])
def test_a_training_cohort_that_overlaps_the_study_is_refused(schema, default, study, training, message):
    config = copy.deepcopy(default)
    config["cohort"].update(study)
    config.setdefault("segmentation", {}).setdefault("unet", {}).setdefault("training_cohort", {}).update(training)
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    assert str(err.value) == message


def test_a_label_prefix_must_be_a_label(schema, default):
    config = copy.deepcopy(default)
    config["segmentation"]["unet"] = {"training_cohort": {"label_prefix": "train_"}}
    with pytest.raises(ConfigError, match=r"^config key 'segmentation.unet.training_cohort.label_prefix': 'train_' "
                                          r"does not match"):
        validate(config, schema)


@pytest.mark.parametrize("mri", [
    {"sequence": "spin_echo", "tr_ms": 4000.0, "te_ms": 100.0},
    {"sequence": "spin_echo", "tr_ms": 500.0, "te_ms": 15.0},
    {"sequence": "inversion_recovery", "tr_ms": 2000.0, "te_ms": 4.0, "ti_ms": 600.0},
    {"sequence": "inversion_recovery", "tr_ms": 2300.0, "te_ms": 3.0, "ti_ms": 900.0},
])
def test_the_check_uses_the_signal_model_of_the_simulation(mri):
    """tissue_signals (numpy, for a cheap config check) equals dlmi.recon.mri.sequence_signal (torch), with
    which simulate_mri makes the images, for pure CSF, GM and WM."""
    import torch

    from dlmi.labels import BRAIN_CLASSES, TISSUE_LABELS
    from dlmi.recon import mri as mr
    from dlmi.sim.anatomy import tissue_properties

    table, index = tissue_properties(), [TISSUE_LABELS[name] for name in BRAIN_CLASSES]
    pd, t1, t2 = (torch.as_tensor(table[key][index], dtype=torch.float64) for key in ("pd", "t1_ms", "t2_ms"))
    np.testing.assert_allclose(tissue_signals(mri), mr.sequence_signal(pd, t1, t2, mri).numpy(), rtol=1e-12)


def test_validating_a_config_imports_no_torch(repo):
    """The Snakefile validates the config at parse time, for every job: it stays cheap."""
    code = ("import sys; from dlmi_workflow import config; "
            "config.validate({}, config.load_yaml('workflow/schemas/config.schema.yaml')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = dict(os.environ, PYTHONPATH=str(repo / "scripts"))
    subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, check=True)
