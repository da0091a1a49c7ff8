"""Voxel orientation of NIfTI images: every image the workflow reads is put on an axis-aligned RAS+ grid.

Convention: array axis i runs along world axis i (x to the patient's Right, y Anterior, z Superior), so the
voxel-to-world affine has a positive diagonal 3x3 part (voxel sizes in mm) and no off-diagonal terms. The
kernels rely on this (they read voxel sizes from the diagonal).

What a reader does with other orientations:
- axis flips and permutations (LPS, LAS, PIR, ...): the array is flipped/transposed to RAS+ and the affine
  adjusted so that every voxel keeps its world position; no resampling, no value changes (lossless);
- oblique grids (orthogonal axes rotated away from the world axes) and sheared grids (non-orthogonal axes):
  refused by the reader. Turning an oblique grid into an axis-aligned one needs interpolation, a decision
  the reader does not take silently: `dlmi.spatial.conform` does it, explicitly, for the step that brings a researcher's
  own images into a study (most scanner T1w images are oblique by a few degrees);
- singular or non-finite affines, and images with no orientation at all (qform and sform codes 0) or with
  qform and sform that disagree: refused.

Functions raise ValueError with the problem only; `dlmi.io.load_nifti` adds the file name.
"""
from __future__ import annotations

import numpy as np
from nibabel import orientations

# Largest |cosine| between voxel axes (shear) and largest off-axis component of a voxel axis (obliquity)
# treated as rounding: NIfTI stores the sform in float32, whose relative precision is ~6e-8.
TOLERANCE = 1e-4


def axis_codes(affine: np.ndarray) -> str:
    """Closest world direction of each array axis, e.g. "RAS", "LPS", "PIR"."""
    return "".join(orientations.aff2axcodes(np.asarray(affine, dtype=np.float64)))


def check_affine(affine: np.ndarray) -> None:
    """Raise ValueError unless `affine` (4, 4) is finite, non-singular and has orthogonal voxel axes."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError("affine is not a finite 4x4 matrix")
    axes = affine[:3, :3]
    sizes = np.linalg.norm(axes, axis=0)
    if np.any(sizes < 1e-6) or abs(np.linalg.det(axes)) < 1e-9 * np.prod(sizes):
        raise ValueError("affine is singular (a voxel axis has zero length or two axes are parallel)")
    cosines = (axes / sizes).T @ (axes / sizes)
    off = np.abs(cosines - np.eye(3))
    i, j = np.unravel_index(np.argmax(off), off.shape)
    if off[i, j] > TOLERANCE:
        angle = np.degrees(np.arccos(np.clip(cosines[i, j], -1.0, 1.0)))
        raise ValueError(f"affine is sheared: voxel axes {i} and {j} meet at {angle:.2f} degrees, not 90; "
                         "refusing to guess the orientation")


def obliquity_degrees(affine: np.ndarray) -> float:
    """Largest angle (degrees) between a voxel axis and the world axis closest to it."""
    axes = np.asarray(affine, dtype=np.float64)[:3, :3]
    cosines = np.abs(axes) / np.linalg.norm(axes, axis=0)
    return float(np.degrees(np.arccos(np.clip(cosines.max(axis=0).min(), -1.0, 1.0))))


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Put an image on an axis-aligned RAS+ grid without resampling.

    data: (X, Y, Z, ...) array (axes past the third are carried along, e.g. vector components in world
    axes, which a flip does not change); affine: (4, 4) voxel-to-world, mm.
    Returns (data (X', Y', Z', ...) C-contiguous, affine (4, 4) with positive diagonal 3x3 part, the axis codes
    the input had, e.g. "LPS"). Every voxel keeps its world position and value.
    Raises ValueError for singular, sheared or oblique affines.
    """
    affine = np.asarray(affine, dtype=np.float64)
    check_affine(affine)
    angle = obliquity_degrees(affine)
    if np.sin(np.radians(angle)) > TOLERANCE:
        raise ValueError(f"affine is oblique: voxel axes are rotated up to {angle:.2f} degrees from the "
                         "world (RAS+) axes; resample the image to an axis-aligned grid first")
    codes = axis_codes(affine)
    if codes == "RAS":
        return data, affine, codes
    ornt = orientations.io_orientation(affine)
    affine = affine @ orientations.inv_ornt_aff(ornt, data.shape[:3])
    data = np.ascontiguousarray(orientations.apply_orientation(data, ornt))
    return data, affine, codes


def header_affine(header) -> np.ndarray:
    """The voxel-to-world affine a NIfTI header states, refusing headers that state none or two.

    Uses the sform when its code is set, else the qform; raises ValueError when neither code is set (the
    orientation is unknown) or when both are set and place the grid differently (by > 0.1 mm or 0.1 %).
    """
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if not sform_code and not qform_code:
        raise ValueError("no orientation: qform_code and sform_code are both 0")
    if sform_code and qform_code:
        last = np.asarray(header.get_data_shape()[:3]) - 1
        corners = np.array([[i, j, k, 1] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]).T
        gap = np.abs(sform @ corners - qform @ corners)[:3].max()
        if gap > 0.1:
            raise ValueError(f"qform and sform disagree (grid corners {gap:.1f} mm apart)")
    return np.asarray(sform if sform_code else qform, dtype=np.float64)
