"""Images as inputs of the group models: each subject's T1w in template space through its affine registration
alone, on a coarser grid cropped to the template's brain, intensity-normalised per image.

The affine registration removes head size and pose but keeps the atrophy a nonlinear warp would undo, which is
what an image classifier is to see (as in Wen et al. 2020, "Convolutional neural networks for classification of
Alzheimer's disease: overview and reproducible evaluation", Medical Image Analysis 63:101694, whose CNNs read
linearly registered T1w images). Arrays are (X, Y, Z) in RAS+ voxel order; affines are 4x4 voxel-to-world
matrices in mm (`dlmi.spatial.grid`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from dlmi.register.linear import gaussian_smooth
from dlmi.spatial.grid import voxel_size
from dlmi.spatial.resampling import resample

# voxels of margin kept around the brain's bounding box on the model grid
MARGIN = 1


def model_grid(brain: np.ndarray, brain_affine: np.ndarray, voxel_mm: float) -> tuple[tuple[int, int, int],
                                                                                     np.ndarray]:
    """The model's grid: axis-aligned with the template, `voxel_mm` isotropic, covering the bounding box of
    the template's brain mask `brain` (on the grid `brain_affine`) plus MARGIN voxels. Returns (shape,
    voxel-to-world affine)."""
    inside = np.argwhere(brain > 0.5)
    if inside.size == 0:
        raise ValueError("the template's brain mask is empty")
    corners = np.c_[np.stack([inside.min(0), inside.max(0)]), np.ones(2)] @ brain_affine.T
    low, high = np.minimum(corners[0, :3], corners[1, :3]), np.maximum(corners[0, :3], corners[1, :3])
    shape = tuple(math.ceil((hi - lo) / voxel_mm) + 1 + 2 * MARGIN for lo, hi in zip(low, high))
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = low - MARGIN * voxel_mm
    return shape, affine


def mask_on_grid(mask: np.ndarray, mask_affine: np.ndarray, shape, affine: np.ndarray) -> np.ndarray:
    """The binary `mask` (e.g. the template's brain) on the grid (`shape`, `affine`): trilinear, then > 1/2."""
    return resample(mask.astype(np.float32), mask_affine, shape, affine) > 0.5


def to_model_grid(t1w: np.ndarray, t1_affine: np.ndarray, transform: np.ndarray, shape, affine: np.ndarray
                  ) -> np.ndarray:
    """The T1w on the model grid (`shape`, `affine`) through `transform` (4x4 world matrix template -> T1w,
    as register_t1 writes it), smoothed first by the Gaussian that takes its voxels to the grid's size
    (sigma = sqrt(target^2 - source^2) / 2.355 per axis, in source voxels) so that the coarser sampling does
    not alias. Trilinear; 0 outside the scan. float32 (X, Y, Z)."""
    source = voxel_size(t1_affine)
    target = float(voxel_size(affine)[0])
    sigma = [math.sqrt(max(target ** 2 - s ** 2, 0.0)) / 2.355 / s for s in source]
    smoothed = gaussian_smooth(torch.from_numpy(np.ascontiguousarray(t1w, dtype=np.float32)), sigma)
    return resample(smoothed, t1_affine, shape, affine, transform).numpy().astype(np.float32)


def normalise_intensity(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """`image` divided by its median within `brain` (a mask on the same grid): scanner gain and contrast scale
    removed from each image on its own, so that no subject's value depends on another's."""
    median = float(np.median(image[brain > 0.5]))
    if not median > 0:
        raise ValueError(f"the median intensity within the brain is {median:g}, not positive")
    return (image / median).astype(np.float32)
