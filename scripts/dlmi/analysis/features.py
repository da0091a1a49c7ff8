"""Regional features from reconstructed, segmented images: volumes (mL) and PET SUVR."""
from __future__ import annotations

import numpy as np

from dlmi.io import InputError


def intracranial_volume(posteriors: np.ndarray, voxel_ml: float) -> float:
    """Intracranial volume (mL): the summed CSF, GM and WM posteriors (3, X, Y, Z) of the brain mask."""
    return float(posteriors.sum() * voxel_ml)


def regional_volumes(
    posteriors: dict[str, np.ndarray], regions: np.ndarray, region_labels: dict[str, int], voxel_ml: float
) -> dict[str, float]:
    """Soft tissue volume (mL) of each feature of `VOLUME_FEATURES` inside its region.

    posteriors: tissue class name -> (X, Y, Z) posterior; regions: (X, Y, Z) labels in subject space;
    region_labels: region name -> label value (dlmi.labels.REGIONS).
    """
    return {
        name: float(posteriors[tissue][regions == region_labels[region]].sum() * voxel_ml)
        for name, (region, tissue) in VOLUME_FEATURES.items()
    }


def unet_volumes(probabilities: np.ndarray, class_labels: dict[str, int], voxel_ml: float) -> dict[str, float]:
    """The volume features of `VOLUME_FEATURES` and the intracranial volume (mL) from U-Net class
    probabilities (C, X, Y, Z): each feature is the summed probability of its region's class
    (`dlmi.labels.UNET_LABELS`), the intracranial volume that of every class but the background."""
    volumes = {name: float(probabilities[class_labels[region]].sum() * voxel_ml)
               for name, (region, _) in VOLUME_FEATURES.items()}
    volumes["icv_ml"] = float(probabilities[1:].sum() * voxel_ml)
    return volumes


def regional_mean(image: np.ndarray, regions: np.ndarray, label: int, weights: np.ndarray | None = None) -> float:
    """Mean of `image` over the voxels labelled `label`, optionally weighted (e.g. by a GM posterior).

    Raises InputError when the region is empty (or has zero weight), naming the label; the caller adds the
    file names.
    """
    inside = regions == label
    w = inside.astype(np.float64) if weights is None else np.where(inside, weights, 0.0)
    total = w.sum()
    if total <= 0:
        what = "no voxel" if not inside.any() else "zero total weight"
        raise InputError(f"region label {label} is empty in this subject's segmentation ({what})")
    return float((image * w).sum() / total)


def suvr(
    pet: np.ndarray, regions: np.ndarray, targets: dict[str, int], reference: int, gm: np.ndarray
) -> dict[str, float]:
    """Standardised uptake value ratios: GM-weighted mean uptake of each target region over the reference.

    pet: (X, Y, Z) activity (any unit, it cancels) on the grid of `regions`; gm: GM posterior on that grid.
    Raises InputError (without file names, which the caller adds) when a region is empty or the reference
    uptake is not positive.
    """
    reference_uptake = regional_mean(pet, regions, reference, gm)
    if reference_uptake <= 0:
        raise InputError(f"mean uptake {reference_uptake:g} in the reference region (label {reference}) is not "
                         "positive")
    return {name: regional_mean(pet, regions, label, gm) / reference_uptake for name, label in targets.items()}


# Region definitions of the features: name -> (region label name in dlmi.labels.REGIONS, tissue class).
VOLUME_FEATURES = {
    "hippocampus_L_ml": ("hippocampus_L", "gm"),
    "hippocampus_R_ml": ("hippocampus_R", "gm"),
    "ventricle_L_ml": ("ventricle_L", "csf"),
    "ventricle_R_ml": ("ventricle_R", "csf"),
}
SUVR_TARGETS = ("hippocampus_L", "hippocampus_R", "temporal", "parietal")
