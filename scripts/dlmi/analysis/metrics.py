"""Quality figures against the ground truth: NRMSE, PSNR, Dice, Hausdorff distance, volume error."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np


def nrmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square error normalised by the truth's range over the mask (skimage's 'min-max')."""
    mask = np.ones(truth.shape, bool) if mask is None else mask.astype(bool)
    e, t = estimate[mask].astype(np.float64), truth[mask].astype(np.float64)
    return float(np.sqrt(np.mean((e - t) ** 2)) / (t.max() - t.min()))


def psnr(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio (dB) with the truth's range over the mask as the peak."""
    mask = np.ones(truth.shape, bool) if mask is None else mask.astype(bool)
    e, t = estimate[mask].astype(np.float64), truth[mask].astype(np.float64)
    return float(10 * np.log10((t.max() - t.min()) ** 2 / np.mean((e - t) ** 2)))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A∩B| / (|A|+|B|) of two binary masks of equal shape (nonzero = in the set; 1.0 when
    both are empty). numpy arrays or CPU torch tensors."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def label_dice(a: np.ndarray, b: np.ndarray, labels) -> dict:
    """Dice per label of two label maps of equal shape: {label: dice(a == label, b == label)}."""
    a, b = np.asarray(a), np.asarray(b)
    return {label: dice(a == label, b == label) for label in labels}


def volume_error_percent(measured: float, truth: float) -> float:
    """Signed volume error in % of the true volume."""
    return 100.0 * (measured - truth) / truth


def hausdorff_distance(
    a: np.ndarray, b: np.ndarray, spacing: Sequence[float], percentile: float | None = None
) -> float:
    """Symmetric Hausdorff distance (mm) between the surfaces of two binary masks, MONAI's
    `compute_hausdorff_distance` (imported here: the other metrics need neither torch nor MONAI).

    The surface of a mask is its voxels with a 6-neighbour outside it; each surface voxel's distance to the
    other surface is the Euclidean distance between voxel centres scaled by `spacing` (mm per voxel along
    X, Y, Z). The result is the larger of the two directed distances, each the `percentile` (None: maximum) of
    its surface's distances. 0.0 when both masks are empty, inf when only one is.
    """
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return math.inf
    import torch
    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():  # MONAI 1.6.1 passes its own deprecated argument to get_mask_edges
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        distance = compute_hausdorff_distance(
            torch.from_numpy(a)[None, None],
            torch.from_numpy(b)[None, None],
            include_background=True,
            percentile=percentile,
            spacing=[float(s) for s in spacing],
        )
    return float(distance.reshape(-1)[0])


def hausdorff95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> float:
    """95 % Hausdorff distance (mm) between two binary masks (`hausdorff_distance` with percentile 95)."""
    return hausdorff_distance(a, b, spacing, percentile=95.0)
