"""World grids and 4x4 spatial matrices: the conventions every spatial module of dlmi shares.

- A volume is an array of shape (X, Y, Z) in NIfTI voxel order; its `affine` is the 4x4 voxel-to-world
  matrix (RAS+, mm) that maps a voxel index (i, j, k, 1) to a world point (x, y, z, 1).
- A spatial transform is a 4x4 matrix `T` in world coordinates (RAS+, mm) that maps a point x of the
  FIXED image's space to the corresponding point T(x) of the MOVING image's space. This is the ITK/ANTs
  convention: resampling the moving image onto the fixed grid evaluates the moving image at T(x).
- Voxel values are sampled at voxel centres. A point counts as inside an image when its continuous voxel
  index lies within [-0.5, n - 0.5] on every axis (the voxels' physical extent, as in ITK).
"""
from __future__ import annotations

import numpy as np


def as_matrix(matrix) -> np.ndarray:
    """A 4x4 matrix (numpy or torch, any device) as numpy float64, checked."""
    if hasattr(matrix, "detach"):  # a torch tensor; this module does not import torch
        matrix = matrix.detach().cpu().numpy()
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 homogeneous matrix, got shape {m.shape}")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"last row of a homogeneous matrix must be (0, 0, 0, 1), got {m[3]}")
    return m


def invert(matrix) -> np.ndarray:
    """Inverse of a 4x4 affine matrix (numpy float64): the transform moving -> fixed for T fixed -> moving."""
    return np.linalg.inv(as_matrix(matrix))


def transform_points(matrix, points) -> np.ndarray:
    """Map world points (N, 3) or (3,) (mm) through the 4x4 matrix; returns the same shape, float64."""
    m = as_matrix(matrix)
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def voxel_size(affine) -> np.ndarray:
    """Voxel spacing (3,) in mm: the lengths of the affine's first three columns."""
    return np.linalg.norm(as_matrix(affine)[:3, :3], axis=0)


def grid_corners(shape, affine) -> np.ndarray:
    """World coordinates (8, 3), mm, of the centres of the 8 corner voxels of a grid of `shape`."""
    idx = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                   dtype=np.float64)
    return transform_points(affine, idx)


def corner_error_mm(T_est, T_true, shape, affine) -> float:
    """Largest distance (mm) between T_est(c) and T_true(c) over the 8 corner voxel centres c of the fixed grid.

    shape: (X, Y, Z) of the fixed grid; affine: its voxel-to-world matrix. An upper bound of the
    displacement error over the whole grid for affine transforms (the error is affine, hence maximal at a corner).
    """
    c = grid_corners(shape, affine)
    return float(np.max(np.linalg.norm(transform_points(T_est, c) - transform_points(T_true, c), axis=1)))



def world_grid(shape, affine) -> np.ndarray:
    """World coordinates (3, X, Y, Z), mm, float64, of the voxel centres of a grid of `shape` (X, Y, Z):
    world[r] = affine[r, 3] + sum over c of affine[r, c] * index_c (terms with a zero coefficient skipped)."""
    a = as_matrix(affine)
    axes = [np.arange(n, dtype=np.float64) for n in shape]
    out = np.empty((3,) + tuple(int(n) for n in shape), np.float64)
    for r in range(3):
        out[r] = a[r, 3]
        for c in range(3):
            if a[r, c] != 0:
                broadcast = [1, 1, 1]
                broadcast[c] = int(shape[c])
                out[r] += a[r, c] * axes[c].reshape(broadcast)
    return out
