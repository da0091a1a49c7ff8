"""Intensity non-uniformity (bias field) correction of MRI: N4 (Tustison et al. 2010, IEEE TMI 29:1310)
through SimpleITK, with the settings of ANTs' `N4BiasFieldCorrection` as antspyx calls it by default.

A receive coil's sensitivity makes a real T1w image brighter near the coil and darker far from it, a smooth
multiplicative field of 10-30 % that no simulated image of this workflow has but every scanner image does.
N4 models log(image) = log(true) + log(field) with a B-spline field and sharpens the intensity histogram.
The field is fitted on a shrunk copy (fast) and evaluated on the full grid; the corrected image is
image / field.
"""
from __future__ import annotations

import numpy as np

from dlmi.register.itk import to_sitk_image

# antspyx n4_bias_field_correction defaults: shrink 4, 4 levels x 50 iterations, tolerance 1e-7, a B-spline
# mesh of 1 element per axis (order 3: 4 control points), 200 histogram bins, FWHM 0.15, Wiener noise 0.01.
SHRINK = 4
ITERATIONS = (50, 50, 50, 50)
TOLERANCE = 1e-7
CONTROL_POINTS = 4


def n4_correct(image: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None, *, shrink: int = SHRINK,
               iterations=ITERATIONS, control_points: int = CONTROL_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """N4 bias field correction of an (X, Y, Z) image with its voxel-to-world affine (RAS+, mm).

    mask: (X, Y, Z) bool, the voxels the field is fitted on (default: voxels above 1 % of the maximum);
    shrink: integer subsampling of the fit; iterations: per fitting level (len = levels); control_points:
    B-spline control points per axis at the coarsest level (> 3). Intensities must be positive in the mask
    (N4 works on their logarithm). Returns (corrected image float32, field float32 > 0), with
    image = corrected * field; outside the mask the field is extrapolated smoothly.
    """
    import SimpleITK as sitk

    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"image must be 3-D (X, Y, Z), got shape {data.shape}")
    mask = data > 0.01 * float(data.max()) if mask is None else np.asarray(mask, bool)
    if not mask.any() or np.any(data[mask] <= 0):
        raise ValueError("N4 needs positive intensities in a non-empty mask")
    full = to_sitk_image(data, affine)
    full_mask = to_sitk_image(mask.astype(np.uint8), affine)
    small = sitk.Shrink(full, [shrink] * 3) if shrink > 1 else full
    small_mask = sitk.Shrink(full_mask, [shrink] * 3) if shrink > 1 else full_mask
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(TOLERANCE)
    n4.SetNumberOfControlPoints([int(control_points)] * 3)
    n4.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(full)).transpose(2, 1, 0)
    field = np.exp(log_field).astype(np.float32)
    return (data / field).astype(np.float32), field
