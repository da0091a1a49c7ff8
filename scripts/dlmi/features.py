"""Regional features from reconstructed, segmented images: volumes (mL) and PET SUVR."""
from __future__ import annotations

import numpy as np


def intracranial_volume(posteriors: np.ndarray, voxel_ml: float) -> float:
    """Intracranial volume (mL): the summed CSF, GM and WM posteriors (3, X, Y, Z) of the brain mask."""
    return float(posteriors.sum() * voxel_ml)


def regional_volumes(
    posteriors: dict[str, np.ndarray], regions: np.ndarray, region_labels: dict[str, int], voxel_ml: float
) -> dict[str, float]:
    """Soft tissue volume (mL) of each feature of `VOLUME_FEATURES` inside its region.

    posteriors: tissue class name -> (X, Y, Z) posterior; regions: (X, Y, Z) labels in subject space;
    region_labels: region name -> label value (dlmi.phantom.REGIONS).
    """
    return {
        name: float(posteriors[tissue][regions == region_labels[region]].sum() * voxel_ml)
        for name, (region, tissue) in VOLUME_FEATURES.items()
    }


def regional_mean(image: np.ndarray, regions: np.ndarray, label: int, weights: np.ndarray | None = None) -> float:
    """Mean of `image` over the voxels labelled `label`, optionally weighted (e.g. by a GM posterior).

    Raises ValueError when the region is empty (or has zero weight), naming the label.
    """
    inside = regions == label
    w = inside.astype(np.float64) if weights is None else np.where(inside, weights, 0.0)
    total = w.sum()
    if total <= 0:
        raise ValueError(f"region label {label} is empty in this subject's segmentation")
    return float((image * w).sum() / total)


def suvr(
    pet: np.ndarray, regions: np.ndarray, targets: dict[str, int], reference: int, gm: np.ndarray
) -> dict[str, float]:
    """Standardised uptake value ratios: GM-weighted mean uptake of each target region over the reference.

    pet: (X, Y, Z) activity (any unit, it cancels) on the grid of `regions`; gm: GM posterior on that grid.
    """
    reference_uptake = regional_mean(pet, regions, reference, gm)
    return {name: regional_mean(pet, regions, label, gm) / reference_uptake for name, label in targets.items()}


# Region definitions of the features: name -> (region label name in dlmi.phantom.REGIONS, tissue class).
VOLUME_FEATURES = {
    "hippocampus_L_ml": ("hippocampus_L", "gm"),
    "hippocampus_R_ml": ("hippocampus_R", "gm"),
    "ventricle_L_ml": ("ventricle_L", "csf"),
    "ventricle_R_ml": ("ventricle_R", "csf"),
}
SUVR_TARGETS = ("hippocampus_L", "hippocampus_R", "temporal", "parietal")

FEATURE_SETS = {
    "t1_volumes": [*VOLUME_FEATURES, "icv_ml"],
    "pet_suvr": [f"suvr_{name}" for name in SUVR_TARGETS],
}
FEATURE_SETS["t1_volumes+pet_suvr"] = FEATURE_SETS["t1_volumes"] + FEATURE_SETS["pet_suvr"]
