"""Reading and writing images (NIfTI), raw data (.npz with acquisition parameters) and tables.

Every writer writes to a temporary name in the target folder and renames, so a crash never leaves a
truncated file under the final name. Every reader checks what it reads and names the file in its error.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np


class InputError(ValueError):
    """Bad input data: the message names the file and the problem."""


def _atomic_target(path: str | os.PathLike, suffix: str) -> tuple[Path, str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return path, tmp


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
    """Read a NIfTI of `ndim` dimensions; returns (data (X, Y, Z[, ...]) as `dtype`, affine (4, 4), RAS+ mm).

    Raises InputError naming the file when it is unreadable, not 3-D, holds NaN/Inf or has an affine that
    is not a scaled rotation (RAS+ orientation is required; see `dlmi.orientation` when it lands).
    """
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=dtype)
    except Exception as err:  # nibabel raises several types for truncated or corrupt files
        raise InputError(f"{path}: cannot read NIfTI ({err})") from err
    if data.ndim != ndim:
        raise InputError(f"{path}: expected a {ndim}-D image, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: image has NaN or Inf voxels")
    return data, np.asarray(img.affine, dtype=np.float64)


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

    Raises InputError naming the file and the first missing array or acquisition parameter.
    """
    try:
        with np.load(str(path), allow_pickle=False) as npz:
            if "acquisition" not in npz.files:
                raise InputError(f"{path}: no acquisition parameters stored")
            acquisition = json.loads(str(npz["acquisition"]))
            missing = [name for name in arrays if name not in npz.files]
            if missing:
                raise InputError(f"{path}: missing array {missing[0]!r}")
            data = {name: npz[name] for name in arrays}
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: cannot read raw data ({err})") from err
    missing = [name for name in params if name not in acquisition]
    if missing:
        raise InputError(f"{path}: missing acquisition parameter {missing[0]!r}")
    return data, acquisition


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
