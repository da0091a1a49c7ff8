"""Conforming a researcher's own image to the study's grid: any orientation, obliquity or voxel size to an
axis-aligned RAS+ grid of isotropic voxels, by resampling when it must (the one place that interpolates an
image on input; the readers in `dlmi.io` never do). Shears and singular affines stay refused.
"""
from __future__ import annotations

import math

import numpy as np

from dlmi.spatial import orientation
from dlmi.spatial.resampling import resample


def conform(data: np.ndarray, affine: np.ndarray, voxel_mm: float, *,
            order: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Put any non-sheared image on an axis-aligned RAS+ grid of isotropic `voxel_mm` voxels.

    data: (X, Y, Z) or (X, Y, Z, 1) array (a singleton 4th axis, as scanners write some 3-D images, is
    dropped); affine: (4, 4) voxel-to-world, mm, oblique, flipped, permuted and anisotropic allowed.
    The output grid covers the world bounding box of the input's field of view (the voxels' outer faces)
    with voxel centres at lo + voxel_mm / 2 + k voxel_mm along each world axis. Values are resampled with
    `dlmi.spatial.resampling.resample` (order 1 trilinear for intensities, 0 nearest for label maps); world
    points outside the input get 0.
    When the input already is an axis-aligned grid of `voxel_mm` voxels (after flips and permutations),
    nothing is interpolated: the result is `orientation.to_ras`'s, voxel for voxel.

    Returns (data (X', Y', Z') float32 for order 1, the input dtype for order 0; affine (4, 4) RAS+ diagonal;
    a record for logs and provenance: input axis codes, obliquity in degrees, input voxel sizes, input shape,
    and whether the image was resampled). Raises ValueError for singular or sheared affines, for more than a
    singleton 4th axis, and for a non-positive voxel size.
    """
    data = np.asarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D image (or 4-D with one volume), got shape {data.shape}")
    if not voxel_mm > 0:
        raise ValueError(f"voxel size must be positive, got {voxel_mm}")
    affine = np.asarray(affine, dtype=np.float64)
    orientation.check_affine(affine)
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    record = {"axis_codes": orientation.axis_codes(affine), "obliquity_degrees": orientation.obliquity_degrees(affine),
              "voxel_mm": [float(s) for s in sizes], "shape": [int(n) for n in data.shape], "resampled": False}
    if math.sin(math.radians(record["obliquity_degrees"])) <= orientation.TOLERANCE:
        ras, ras_affine, _ = orientation.to_ras(data, affine)
        if np.allclose(np.diag(ras_affine)[:3], voxel_mm, rtol=orientation.TOLERANCE, atol=0):
            return (ras if order == 0 else ras.astype(np.float32)), ras_affine, record
    n = np.asarray(data.shape, dtype=np.float64)
    faces = np.array([[i, j, k, 1.0] for i in (-0.5, n[0] - 0.5) for j in (-0.5, n[1] - 0.5)
                      for k in (-0.5, n[2] - 0.5)])
    world = (affine @ faces.T)[:3]
    lo, hi = world.min(axis=1), world.max(axis=1)
    shape = tuple(int(s) for s in np.maximum(1, np.ceil((hi - lo) / voxel_mm - 1e-6)))
    out_affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    out_affine[:3, 3] = lo + voxel_mm / 2
    moving = data if order == 0 else data.astype(np.float32)
    record["resampled"] = True
    return resample(moving, affine, shape, out_affine, order=order), out_affine, record


def looks_skull_stripped(data: np.ndarray) -> bool:
    """Whether an image as stored looks skull-stripped: every voxel on the six faces of its grid is 0 (the
    test of sMRIPrep's `--skull-strip-t1w auto`; a head scan has noise or anatomy at its borders).
    data: (X, Y, Z) array."""
    data = np.asarray(data)
    faces = (data[0], data[-1], data[:, 0], data[:, -1], data[:, :, 0], data[:, :, -1])
    return all(not np.any(face) for face in faces)
