"""Rule assess_quality: one subject's reconstruction, registration and segmentation scored against the truth."""
import json

import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import features, metrics
from dlmi.labels import BRAIN_CLASSES, REGIONS, TISSUE_LABELS, UNET_LABELS, UNET_REGIONS, unet_to_tissue
from dlmi.register import itk, svf
from dlmi.spatial import grid, resampling
from dlmi_workflow import runlog

REGISTRATION_LABELS = ("hippocampus_L", "hippocampus_R", "ventricle_L", "ventricle_R", "frontal", "temporal",
                       "parietal", "occipital", "cerebellum")


def recon_rows(inp):
    rows = []
    for modality, truth_key, key in (("mri", "truth_t1w", "t1w"), ("ct", "truth_ct", "ct"), ("pet", "truth_pet", "pet")):
        truth, truth_affine = io.load_nifti(inp[truth_key])
        estimate, affine = io.load_nifti(inp[key])
        io.check_same_grid(inp[key], estimate.shape, affine, inp[truth_key], truth.shape, truth_affine, what="image")
        head = truth > (truth.min() + 0.05 * (truth.max() - truth.min()))  # the head, not the air around it
        rows.append({"modality": modality, "nrmse": metrics.nrmse(estimate, truth, head), "psnr_db": metrics.psnr(estimate, truth, head)})
    return rows


def registration_rows(inp):
    """Dice of template regions propagated into the subject by the estimated T1 transform (affine and
    velocity field), and of truth regions moved by the estimated vs the true PET/MRI head motion."""
    truth_regions, affine = io.load_nifti(inp["truth_regions"], dtype=np.uint8)
    template_regions, tpl_affine = io.load_nifti(inp["template_regions"], dtype=np.uint8)
    velocity = svf.load_velocity(inp["t1_velocity"])[0]
    propagated = svf.propagate_to_moving(template_regions, tpl_affine, truth_regions.shape, affine,
                                                itk.read_transform(inp["t1_xfm"]), velocity, order=0)
    rows = [{"registration": "t1_to_template", "structure": name,
             "dice": metrics.dice(propagated == REGIONS[name], truth_regions == REGIONS[name]),
             "corner_error_mm": np.nan} for name in REGISTRATION_LABELS]
    with open(inp["truth_motion"]) as fh:
        motion = np.array(json.load(fh)["matrix"])
    estimated = itk.read_transform(inp["pet_xfm"])
    error = grid.corner_error_mm(estimated, motion, truth_regions.shape, affine)
    in_pet_truth = resampling.resample(truth_regions, affine, truth_regions.shape, affine, np.linalg.inv(motion), order=0)
    in_pet_estimated = resampling.resample(truth_regions, affine, truth_regions.shape, affine,
                                             np.linalg.inv(estimated), order=0)
    rows += [{"registration": "pet_to_t1", "structure": name,
              "dice": metrics.dice(in_pet_truth == REGIONS[name], in_pet_estimated == REGIONS[name]),
              "corner_error_mm": error} for name in REGISTRATION_LABELS]
    return rows


def segmentation_rows(inp):
    truth_tissue, affine = io.load_nifti(inp["truth_tissue"], dtype=np.uint8)
    maps = {}
    for key in ("truth_regions", "tissue", "regions", "gm", "csf"):
        maps[key], map_affine = io.load_nifti(inp[key], dtype=np.float32 if key in ("gm", "csf") else np.uint8)
        io.check_same_grid(inp[key], maps[key].shape, map_affine, inp["truth_tissue"], truth_tissue.shape, affine)
    truth_regions, tissue, regions = maps["truth_regions"], maps["tissue"], maps["regions"]
    posteriors = {"gm": maps["gm"], "csf": maps["csf"]}
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    spacing = np.abs(np.diag(affine)[:3])
    rows = []
    for name in BRAIN_CLASSES:
        k = TISSUE_LABELS[name]
        rows.append(structure_row("atlas", name, tissue == k, truth_tissue == k, spacing, voxel_ml))
    measured = features.regional_volumes(posteriors, regions, REGIONS, voxel_ml)
    for feature, (name, tissue_name) in features.VOLUME_FEATURES.items():
        segmented = (regions == REGIONS[name]) & (tissue == TISSUE_LABELS[tissue_name])
        rows.append(structure_row("atlas", name, segmented, truth_regions == REGIONS[name], spacing, voxel_ml,
                                  volume_ml=measured[feature]))
    if "unet" in inp:
        found, unet_affine = io.load_nifti(inp["unet"], dtype=np.uint8)
        io.check_same_grid(inp["unet"], found.shape, unet_affine, inp["truth_tissue"], truth_tissue.shape, affine)
        found_tissue = unet_to_tissue(found)
        for name in BRAIN_CLASSES:
            k = TISSUE_LABELS[name]
            rows.append(structure_row("unet", name, found_tissue == k, truth_tissue == k, spacing, voxel_ml))
        rows.extend(structure_row("unet", name, found == UNET_LABELS[name], truth_regions == REGIONS[name], spacing,
                                  voxel_ml) for name in UNET_REGIONS)
    return rows


def structure_row(method, name, segmented, truth, spacing, voxel_ml, volume_ml=None) -> dict:
    """Dice, 95 % Hausdorff distance (mm), volumes and volume error (%) of one structure; the volume is the
    segmented voxels' unless given (the atlas method's partial-volume estimate)."""
    volume = float(segmented.sum() * voxel_ml) if volume_ml is None else volume_ml
    truth_volume = float(truth.sum() * voxel_ml)
    return {"method": method, "structure": name, "dice": metrics.dice(segmented, truth),
            "hd95_mm": metrics.hausdorff95(segmented, truth, spacing), "volume_ml": volume,
            "truth_volume_ml": truth_volume, "volume_error_percent": metrics.volume_error_percent(volume, truth_volume)}


def main(inp, out, subject, log=None):
    logger = runlog.start(log, "assess_quality")
    for name, rows in (("recon", recon_rows(inp)), ("registration", registration_rows(inp)),
                       ("segmentation", segmentation_rows(inp))):
        table = pd.DataFrame(rows)
        table.insert(0, "participant_id", f"sub-{subject}")
        io.write_tsv(out[name], table)
        logger.info("%s:\n%s", name, table.to_string(index=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.wildcards.subject, sm.log[0])
    runlog.finish(sm)
