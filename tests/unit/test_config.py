import copy

import pytest

from dlmi.config import ConfigError, load_config, load_yaml, validate


@pytest.fixture(scope="module")
def schema(repo):
    return load_yaml(repo / "workflow/schemas/config.schema.yaml")


@pytest.fixture(scope="module")
def default(repo):
    return load_yaml(repo / "config/config.yaml")


def test_default_and_tiny_configs_are_valid(repo, schema):
    for name in ("config.yaml", "tiny.yaml"):
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
