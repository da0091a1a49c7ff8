"""ITK / SimpleITK / ANTs interoperability: transforms and images in their LPS world.

ITK and ANTs use LPS world coordinates; `to_sitk_transform`, `from_sitk_transform`, `write_transform`
and `read_transform` convert (x_LPS = diag(-1, -1, 1) x_RAS), so files written here are read correctly by
SimpleITK, ITK and ANTs (`antsApplyTransforms`, `ants.read_transform`). Transforms follow the convention
of `dlmi.spatial.grid` (RAS+, fixed -> moving).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dlmi.spatial.grid import as_matrix, transform_points, voxel_size

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk_transform(matrix):
    """SimpleITK AffineTransform (LPS, as ITK expects) equal to the RAS world matrix fixed -> moving."""
    import SimpleITK as sitk

    lps = _RAS_TO_LPS @ as_matrix(matrix) @ _RAS_TO_LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(lps[:3, :3].ravel().tolist())
    tx.SetTranslation(lps[:3, 3].tolist())
    tx.SetCenter((0.0, 0.0, 0.0))
    return tx


def from_sitk_transform(tx) -> np.ndarray:
    """RAS world matrix (4x4 float64) of any affine-type SimpleITK transform (Euler, similarity, affine, a
    composite of them ...), found by mapping points; raises ValueError if the transform is not affine."""
    probe = np.array([[0.0, 0.0, 0.0], [100.0, 0, 0], [0, 100.0, 0], [0, 0, 100.0], [37.0, -53.0, 71.0]])
    mapped = np.array([tx.TransformPoint(tuple(float(v) for v in q)) for q in probe])
    lps = np.eye(4)
    lps[:3, 3] = mapped[0]
    lps[:3, :3] = (mapped[1:4] - mapped[0]).T / 100.0
    if not np.allclose(transform_points(lps, probe[4]), mapped[4], atol=1e-6):
        raise ValueError(f"transform {tx.GetName()} is not affine; cannot express it as a 4x4 matrix")
    return _RAS_TO_LPS @ lps @ _RAS_TO_LPS


def to_sitk_image(array, affine):
    """SimpleITK image (LPS geometry) of an (X, Y, Z) numpy array with its RAS+ voxel-to-world affine."""
    import SimpleITK as sitk

    a = as_matrix(affine)
    arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))  # SimpleITK arrays are (Z, Y, X)
    spacing = voxel_size(a)
    lps = _RAS_TO_LPS @ a
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return img


def write_transform(path, matrix) -> None:
    """Write the RAS world matrix (fixed -> moving) as an ITK AffineTransform file, atomically.

    The format follows the extension: ".mat" (ITK MATLAB binary, the ANTs default) or ".txt"/".tfm" (ITK
    text). Both are read by SimpleITK/ITK (`ReadTransform`), by ANTs (`antsApplyTransforms -t`,
    `ants.read_transform`) and by `read_transform`. ITK stores it in LPS; the conversion is done here.
    """
    import SimpleITK as sitk

    from dlmi.io import atomic_write

    path = Path(path)
    if path.suffix not in (".mat", ".txt", ".tfm"):
        raise ValueError(f"{path}: transform files must end in .mat, .txt or .tfm")
    with atomic_write(path, suffix=path.suffix) as tmp:  # SimpleITK picks the format by the extension
        sitk.WriteTransform(to_sitk_transform(matrix), tmp)


def read_transform(path) -> np.ndarray:
    """Read an ITK/ANTs affine-type transform file (.mat, .txt, .tfm) as a RAS world matrix (4x4 float64).

    Raises dlmi.io.InputError (a ValueError) naming the file when it is missing, unreadable or holds a
    non-affine transform.
    """
    import SimpleITK as sitk

    from dlmi.io import InputError

    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as err:
        raise InputError(f"{path}: cannot read transform ({str(err).strip().splitlines()[-1]})") from err
    try:
        return from_sitk_transform(tx)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from err
