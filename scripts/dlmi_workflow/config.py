"""Study configuration: defaults from the JSON schema, validation with messages that name the key."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from dlmi_workflow.bids import study_subjects, training_seed, training_subjects


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type or impossible; the message names the key."""


def load_yaml(path) -> dict:
    """Read a YAML file with the safe loader only: plain mappings, lists, strings, numbers, booleans.

    Raises ConfigError naming the file and line for a Python-object tag (e.g. `!!python/object/apply:...`,
    which an unsafe loader would execute) or invalid YAML.
    """
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        tag = re.search(r"tag '([^']+)'", err.problem or "")
        tag = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else "(unknown)"
        raise ConfigError(f"{path}: line {line}: YAML tag '{tag}' is not allowed (only plain values: "
                          "mappings, lists, strings, numbers, booleans)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: not valid YAML ({where}{getattr(err, 'problem', None) or err})") from None


def with_defaults(config: dict, schema: dict) -> dict:
    """A copy of `config` where every missing key that the schema gives a default gets it (recursively)."""
    config = copy.deepcopy(config)
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            config[key] = with_defaults(config[key], sub)
    return config


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(filter(None, [path, extra[0] if extra else ""]))
    return path or "(top level)"


def validate(config: dict, schema: dict) -> dict:
    """Return `config` with defaults filled in, or raise ConfigError naming the first bad key."""
    if not isinstance(config, dict):
        raise ConfigError("the config must be a mapping of keys to values")
    full = with_defaults(config, schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(full), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            raise ConfigError(f"config key '{_key_path(error)}' is unknown (check its spelling)")
        raise ConfigError(f"config key '{_key_path(error)}': {error.message}")
    _check_consistency(full)
    return full


def _check_consistency(config: dict) -> None:
    """Checks that involve more than one key, which the JSON schema cannot express."""
    low, high = config["cohort"]["age_range"]
    if low > high:
        raise ConfigError(f"config key 'cohort.age_range': minimum {low} is above maximum {high}")
    low, high = config["anatomy"]["effects"]["hippocampal_atrophy"]
    if low > high:
        raise ConfigError(f"config key 'anatomy.effects.hippocampal_atrophy': low {low} is above high {high}")
    pet_mm, anat_mm = config["acquisition"]["pet"]["voxel_mm"], config["anatomy"]["voxel_mm"]
    if pet_mm % anat_mm:
        raise ConfigError(
            f"config key 'acquisition.pet.voxel_mm': {pet_mm} is not an integer multiple of "
            f"anatomy.voxel_mm ({anat_mm})"
        )
    registration = config["registration"]
    pyramids = {"registration.t1_to_template": registration["t1_to_template"],
                "registration.t1_to_template.nonlinear": registration["t1_to_template"]["nonlinear"],
                "registration.pet_to_t1": registration["pet_to_t1"]}
    for key, pyramid in pyramids.items():
        if len(pyramid["levels"]) != len(pyramid["iterations"]):
            raise ConfigError(
                f"config key '{key}.iterations': needs one entry per level "
                f"({len(pyramid['levels'])} levels, {len(pyramid['iterations'])} entries)"
            )
    if config["input"]["bids_dir"] is not None:  # a BIDS study: the checks below are of a simulated cohort
        if config["cohort"]["exclude"]:
            raise ConfigError("config key 'cohort.exclude': a BIDS study leaves subjects out with "
                              "input.exclude_participant_label")
        return
    subjects = study_subjects(config)
    unknown = [s for s in config["cohort"]["exclude"] if s not in subjects]
    if unknown:
        raise ConfigError(f"config key 'cohort.exclude': subject {unknown[0]} is not in the cohort of "
                          f"{len(subjects)} ({', '.join(list(subjects)[:3])}, ...)")
    _check_training_cohort(config, subjects)
    if config["segmentation"]["method"] == "atlas":  # the U-Net is trained on randomised contrasts: any goes
        _check_t1_weighted(config["acquisition"]["mri"])


def _check_training_cohort(config: dict, subjects) -> None:
    """The U-Net's training cohort shares no subject label and no seed with the study cohort, so that no
    training subject is a study subject (its draws come from (seed, label, purpose)) and no draw of one
    cohort is repeated in the other."""
    key = "segmentation.unet.training_cohort"
    if training_seed(config) == config["cohort"]["seed"]:
        raise ConfigError(f"config keys '{key}.seed' and 'cohort.seed': the training cohort's seed "
                          f"{training_seed(config)} is the study's; the U-Net must be trained on other subjects")
    shared = [label for label in training_subjects(config) if label in subjects]
    if shared:
        raise ConfigError(f"config keys '{key}.label_prefix' and 'cohort.n_subjects': training subject "
                          f"{shared[0]} is also a study subject ({len(shared)} shared); the U-Net must be "
                          "trained on other subjects")


def checkpoint_misfit(checkpoint, voxel_mm: float) -> str | None:
    """Why a U-Net checkpoint cannot segment a study on `voxel_mm` isotropic voxels, from the metadata sidecar
    that `train_unet` writes beside it (<checkpoint>.json, read without torch at parse time); None when the
    voxel sizes agree or there is no sidecar (the job's own check, `dlmi.segment.unet.load_checkpoint`,
    then decides)."""
    sidecar = Path(checkpoint).with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        recorded = json.loads(sidecar.read_text())["voxel_size_mm"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{sidecar}: not a readable U-Net checkpoint sidecar ({type(err).__name__}: {err})") from None
    if recorded != [float(voxel_mm)] * 3:
        return (f"{checkpoint} was trained on {recorded} mm voxels and anatomy.voxel_mm is {voxel_mm}: train a "
                "U-Net for this grid (segmentation.unet.train: true) or set segmentation.unet.checkpoint")
    return None


def _check_t1_weighted(mri: dict) -> None:
    """The atlas segmentation unmixes intensities in the T1-weighted order CSF < GM < WM: refuse an MRI
    sequence and timing (config key acquisition.mri) whose pure-tissue signals are in another order."""
    csf, gm, wm = tissue_signals(mri)
    if csf < gm < wm:
        return
    keys = ["sequence", "tr_ms", "te_ms"] + (["ti_ms"] if mri["sequence"] == "inversion_recovery" else [])
    timing = ", ".join(f"{key[:2].upper()} {mri[key]:g} ms" for key in keys[1:])
    raise ConfigError(
        "config keys " + ", ".join(f"'acquisition.mri.{key}'" for key in keys) + f": {mri['sequence']} with "
        f"{timing} is not T1-weighted (pure-tissue signals CSF {csf:.3g}, GM {gm:.3g}, WM {wm:.3g}); "
        "segmentation.method 'atlas' needs CSF < GM < WM"
    )


def tissue_signals(mri: dict) -> np.ndarray:
    """Noise-free MRI signals (3,) of pure CSF, GM and WM (dlmi.labels.BRAIN_CLASSES order) for the sequence
    of `mri` (config key acquisition.mri: sequence, tr_ms, te_ms and, for inversion recovery, ti_ms).

    The signal model of `dlmi.recon.mri.sequence_signal`, in numpy so that checking a config imports no torch,
    with the relaxation times and proton densities of `dlmi.sim.anatomy.tissue_properties`.
    """
    from dlmi.labels import BRAIN_CLASSES, TISSUE_LABELS
    from dlmi.sim.anatomy import tissue_properties

    table = tissue_properties()
    index = [TISSUE_LABELS[name] for name in BRAIN_CLASSES]
    pd, t1, t2 = (table[key][index] for key in ("pd", "t1_ms", "t2_ms"))
    if mri["sequence"] == "spin_echo":
        longitudinal = 1 - np.exp(-mri["tr_ms"] / t1)
    else:  # inversion_recovery, magnitude
        longitudinal = np.abs(1 - 2 * np.exp(-mri["ti_ms"] / t1) + np.exp(-mri["tr_ms"] / t1))
    return pd * longitudinal * np.exp(-mri["te_ms"] / t2)


def load_config(path, schema_path) -> dict:
    """Read, fill and validate a study config file; errors name the file and the key."""
    schema, config = load_yaml(schema_path), load_yaml(path)
    try:
        return validate(config, schema)
    except ConfigError as err:
        raise ConfigError(f"{Path(path)}: {err}") from None
