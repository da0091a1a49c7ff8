"""Quality figures against the ground truth: NRMSE, PSNR, Dice, volume error."""
from __future__ import annotations

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
