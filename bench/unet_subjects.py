"""Subjects for the U-Net's figures, made by the workflow's own rule scripts outside Snakemake, and their scores.

A subject (of the study cohort, or of the U-Net's training cohort) goes through build_template,
simulate_anatomy or simulate_training_subject, simulate_mri and reconstruct_mri, exactly as in a study, then
segment_unet with a checkpoint. `scores` gives the figures of issue 9 for one subject. Used by
bench/bench_unet.py and bench/unet_seeds.py.
"""
from __future__ import annotations

import pathlib

import build_template
import numpy as np
import reconstruct_mri
import segment_unet
import simulate_anatomy
import simulate_mri
import simulate_training_subject
from snakemake.utils import update_config

from dlmi import io, seeding
from dlmi.analysis import metrics
from dlmi.labels import BRAIN_CLASSES, TISSUE_LABELS, UNET_CLASSES, UNET_LABELS, unet_targets, unet_to_tissue
from dlmi.segment import unet
from dlmi.sim import cohort, contrast
from dlmi_workflow.config import load_yaml, validate

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "resources" / "unet" / "unet.pt"
TEMPLATE = ("t1w", "fractions", "tissue", "regions", "brain")
TRUTH = ("t1map", "t2map", "pdmap", "tissue", "regions")


def study_config(*overrides: dict) -> dict:
    """config/config.yaml with config/train-unet.yaml (what the shipped checkpoint was trained with) and
    `overrides` on top, validated."""
    config = load_yaml(REPO / "config/config.yaml")
    for extra in (load_yaml(REPO / "config/train-unet.yaml"), *overrides):
        update_config(config, extra)
    return validate(config, load_yaml(REPO / "workflow/schemas/config.schema.yaml"))


def template(folder: pathlib.Path, config: dict) -> dict:
    files = {name: folder / f"template_{name}.nii.gz" for name in TEMPLATE}
    build_template.main(files, config["anatomy"]["voxel_mm"], config["acquisition"]["mri"])
    return files


def subject(folder: pathlib.Path, label: str, config: dict, template_files: dict, *, training: bool) -> dict:
    """Truth maps and the reconstructed T1w of one subject (a training-cohort subject if `training`), and the
    seed its MRI noise is drawn from. Returns file paths by name (TRUTH, "t1w") and "seed"."""
    folder.mkdir(parents=True, exist_ok=True)
    seed = config["segmentation"]["unet"]["training_cohort"]["seed"] if training else config["cohort"]["seed"]
    draws = {"seed": seed, **{k: config["cohort"][k] for k in ("ad_fraction", "age_range")}}
    group = cohort.draw_participant(draws["seed"], label, cohort.from_config(draws))["group"]
    effects = config["anatomy"]["effects"] if group == "AD" else None
    files = {name: folder / f"truth_{name}.nii.gz" for name in TRUTH}
    if training:
        extra = {"fractions": folder / "truth_fractions.nii.gz", "sidecar": folder / "anatomy.json"}
        simulate_training_subject.main(template_files, {**files, **extra}, label, draws, effects,
                                       config["anatomy"]["voxel_mm"])
    else:
        extra = {"ct": folder / "ct.nii.gz", "fdg": folder / "fdg.nii.gz", "motion": folder / "motion.json",
                 "sidecar": folder / "anatomy.json"}
        simulate_anatomy.main(template_files, {**files, **extra}, label, draws, effects,
                              config["acquisition"]["pet"], config["anatomy"]["voxel_mm"])
    simulate_mri.main(files, {"kspace": folder / "kspace.npz", "truth": folder / "t1w_truth.nii.gz"}, label,
                      draws["seed"], config["acquisition"]["mri"], device="cpu")
    reconstruct_mri.main(folder / "kspace.npz", folder / "t1w.nii.gz", device="cpu")
    return {**files, "t1w": folder / "t1w.nii.gz", "group": group}


def segment(folder: pathlib.Path, t1w, config: dict, checkpoint=CHECKPOINT, device: str = "cpu") -> pathlib.Path:
    """segment_unet on `t1w`; returns the label map's path."""
    out = {"probseg": folder / "unet_probseg.nii.gz", "dseg": folder / "unet_dseg.nii.gz"}
    segment_unet.main(t1w, checkpoint, out, {"voxel_mm": config["anatomy"]["voxel_mm"]}, device, 1)
    return out["dseg"]


def swap_sides(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    for structure in ("hippocampus", "ventricle"):
        left, right = UNET_LABELS[f"{structure}_L"], UNET_LABELS[f"{structure}_R"]
        out[labels == left], out[labels == right] = right, left
    return out


def scores(key: str, files: dict, dseg, voxel_mm: float, checkpoint=CHECKPOINT, device: str = "cpu") -> dict:
    """Issue 9's figures for one segmented subject: Dice per U-Net label; volume errors (%) of both
    hippocampi together, both ventricles together, WM and CSF; the lowest tissue Dice in one PD-weighted image
    (the held-out family, Rician noise at SNR 30; sequence and noise drawn from `key`); the lowest Dice per label
    between the labels of the left-right flipped T1w and the flipped, side-swapped labels."""
    target = unet_targets(io.load_nifti(files["tissue"], dtype=np.uint8)[0],
                          io.load_nifti(files["regions"], dtype=np.uint8)[0])
    found = io.load_nifti(dseg, dtype=np.uint8)[0]
    out = {f"dice_{name}": metrics.dice(found == UNET_LABELS[name], target == UNET_LABELS[name])
           for name in UNET_CLASSES[1:]}
    for name, labels in (("hippocampi", ("hippocampus_L", "hippocampus_R")),
                         ("ventricles", ("ventricle_L", "ventricle_R"))):
        ids = [UNET_LABELS[k] for k in labels]
        out[f"volume_error_{name}"] = metrics.volume_error_percent(float(np.isin(found, ids).sum()),
                                                                   float(np.isin(target, ids).sum()))
    found_tissue, true_tissue = unet_to_tissue(found), unet_to_tissue(target)
    for name in ("wm", "csf"):
        k = TISSUE_LABELS[name]
        out[f"volume_error_{name}"] = metrics.volume_error_percent(float((found_tissue == k).sum()),
                                                                   float((true_tissue == k).sum()))
    model, metadata = unet.load_checkpoint(checkpoint, unet.checked_metadata(voxel_mm))
    patch = metadata["training"]["patch_size"]
    maps = {k: io.load_nifti(files[name])[0] for k, name in (("pd", "pdmap"), ("t1_ms", "t1map"),
                                                                 ("t2_ms", "t2map"))}
    rng = seeding.rng(0, key, "held_out_family")
    sequence = contrast.draw_sequence(rng, contrast.HELD_OUT_FAMILY)
    image = contrast.add_noise(contrast.synthesize(maps["pd"], maps["t1_ms"], maps["t2_ms"], sequence), rng, 30.0)
    _, held_out = unet.infer(model, unet.normalize_intensity(image.numpy()), patch_size=patch, device=device)
    held_out_tissue = unet_to_tissue(held_out)
    out["held_out_tissue_dice"] = min(metrics.dice(held_out_tissue == TISSUE_LABELS[name],
                                                   true_tissue == TISSUE_LABELS[name]) for name in BRAIN_CLASSES)
    t1w, affine = io.load_nifti(files["t1w"])
    if not (affine[0, 0] > 0 and np.allclose(affine[:3, :3], np.diag(np.diag(affine)[:3]))):
        raise ValueError(f"{files['t1w']}: the flip test needs axis 0 to run from left to right")
    _, flipped = unet.infer(model, unet.normalize_intensity(t1w[::-1].copy()), patch_size=patch, device=device)
    expected = swap_sides(found[::-1])
    out["flip_dice"] = min(metrics.dice(flipped == UNET_LABELS[name], expected == UNET_LABELS[name])
                           for name in UNET_CLASSES[1:])
    return out

