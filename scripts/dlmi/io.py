"""Reading and writing images (NIfTI), raw data (.npz with acquisition parameters) and tables.

Every writer writes to a temporary name in the target folder and renames, so a crash never leaves a
truncated file under the final name. Every reader checks what it reads and names the file in its error.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from dlmi import orientation


class InputError(ValueError):
    """Bad input data: the message names the file and the problem."""


def _atomic_target(path: str | os.PathLike, suffix: str) -> tuple[Path, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared like any other file
    return path, tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_nifti(path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> None:
    """Write `data` (X, Y, Z) with its voxel-to-world `affine` (RAS+, mm) as NIfTI, atomically."""
    data = np.asarray(data)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: refusing to write an image with NaN or Inf voxels")
    img = nib.Nifti1Image(data.astype(dtype), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    path, tmp = _atomic_target(path, suffix=".nii.gz" if str(path).endswith(".gz") else ".nii")
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_nifti(path, dtype=np.float32, ndim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI of `ndim` dimensions on an axis-aligned RAS+ grid.

    Returns (data (X, Y, Z[, ...]) as `dtype`, affine (4, 4), RAS+ mm, positive diagonal). An image stored
    with flipped or permuted axes (LPS, LAS, ...) is reoriented to RAS+ without resampling, and the
    conversion is logged (see `dlmi.orientation`).

    Raises InputError naming the file when it is missing, truncated or corrupt, not `ndim`-D, holds NaN/Inf
    voxels, states no orientation (or two that disagree), or has a singular, sheared or oblique affine.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises several types for files that are not NIfTI
        raise InputError(f"{path}: not a NIfTI image, or its header is corrupt") from err
    if len(img.shape) != ndim:
        raise InputError(f"{path}: expected a {ndim}-D image, got shape {img.shape}")
    try:
        raw = np.asarray(img.dataobj)
    except Exception as err:  # EOFError, zlib.error, OSError... for a truncated or corrupt file
        raise InputError(f"{path}: truncated or corrupt NIfTI (the voxel data cannot be read in full)") from err
    if raw.dtype.kind in "fc" and not np.all(np.isfinite(raw)):
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        raise InputError(f"{path}: image has NaN or Inf voxels ({bad} of {raw.size})")
    try:
        affine = orientation.header_affine(img.header)
        data, affine, codes = orientation.to_ras(raw, affine)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    if codes != "RAS":
        logging.getLogger("dlmi.io").info("%s: reoriented from %s to RAS+ (axis flips/permutation, no resampling)",
                                          path, codes)
    return np.asarray(data, dtype=dtype), affine


def check_same_grid(path, shape, affine, image_path, image_shape, image_affine, what: str = "label map") -> None:
    """Raise InputError unless the `what` at `path` lies on the grid of its image: same (X, Y, Z) shape and
    affine (to 1e-3 mm)."""
    if tuple(shape[:3]) != tuple(image_shape[:3]):
        raise InputError(f"{path}: {what} shape {tuple(shape[:3])} differs from the shape "
                         f"{tuple(image_shape[:3])} of its image {image_path}")
    if not np.allclose(affine, image_affine, atol=1e-3):
        raise InputError(f"{path}: {what} affine differs from the affine of its image {image_path}")


def check_nonempty(path, mask, what: str = "mask") -> None:
    """Raise InputError when `mask` (any shape) has no nonzero voxel."""
    if not np.any(mask):
        raise InputError(f"{path}: {what} is empty (no nonzero voxel)")


def save_npz(path, params: dict, *, compress: bool = True, **arrays: np.ndarray) -> None:
    """Write raw data (k-space, sinogram) with its acquisition parameters stored inside, atomically.

    compress=False skips zlib for data that does not compress (noisy complex k-space)."""
    path, tmp = _atomic_target(path, suffix=".npz")
    save = np.savez_compressed if compress else np.savez
    try:
        with open(tmp, "wb") as fh:
            save(fh, acquisition=np.array(json.dumps(params, sort_keys=True)), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_npz(path, arrays: tuple[str, ...], params: tuple[str, ...]) -> tuple[dict, dict]:
    """Read raw data written by `save_npz`; returns (arrays, acquisition parameters).

    Raises InputError naming the file when it is missing, truncated or corrupt, lacks one of `arrays` or
    `params` (all missing names are listed), or holds NaN/Inf values.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    try:
        with np.load(str(path), allow_pickle=False) as npz:
            if "acquisition" not in npz.files:
                raise InputError(f"{path}: no acquisition parameters stored")
            acquisition = json.loads(str(npz["acquisition"]))
            missing = [name for name in arrays if name not in npz.files]
            if missing:
                raise InputError(f"{path}: missing {_names('array', missing)}")
            data = {name: npz[name] for name in arrays}
    except InputError:
        raise
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: acquisition parameters are not valid JSON") from err
    except Exception as err:  # BadZipFile, EOFError, zlib.error, ValueError... for a truncated or corrupt file
        raise InputError(f"{path}: truncated or corrupt raw data (not a readable .npz archive)") from err
    if not isinstance(acquisition, dict):
        raise InputError(f"{path}: acquisition parameters are not a mapping of names to values")
    missing = [name for name in params if name not in acquisition]
    if missing:
        raise InputError(f"{path}: missing acquisition {_names('parameter', missing)}")
    for name, values in data.items():
        if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise InputError(f"{path}: array {name!r} has NaN or Inf values ({bad} of {values.size})")
    return data, acquisition


def _names(kind: str, names: list[str]) -> str:
    """"parameter 'a'" or "parameters 'a', 'b'"."""
    return f"{kind}{'s' if len(names) > 1 else ''} " + ", ".join(repr(n) for n in names)


def write_tsv(path, frame) -> None:
    """Write a pandas DataFrame as a tab-separated table, atomically."""
    path, tmp = _atomic_target(path, suffix=".tsv")
    try:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj) -> None:
    """Write a JSON sidecar, atomically."""
    path, tmp = _atomic_target(path, suffix=".json")
    try:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def leftover_temporaries(path) -> list[Path]:
    """Temporary files of `path` that a writer killed mid-write left behind (the names `_atomic_target` makes)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*"))
