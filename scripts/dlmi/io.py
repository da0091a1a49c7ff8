"""Reading and writing images (NIfTI), raw data (.npz with acquisition parameters) and tables.

Every writer writes to a temporary name in the target folder and renames, so a crash never leaves a
truncated file under the final name. Every reader checks what it reads and names the file in its error.
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from dlmi.spatial import orientation


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


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str):
    """Write `path` atomically: yields a temporary path (str) in the same folder, named `.<name>.<random><suffix>`
    (so `leftover_temporaries` finds it after a kill) with the mode the umask gives; the caller writes the
    file there, and it is renamed to `path` when the block ends without error, removed otherwise.

    suffix: what the temporary name ends in, for writers that pick the format by extension (".nii.gz", ".mat").
    """
    path, tmp = _atomic_target(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_nifti(path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> None:
    """Write `data` (X, Y, Z) with its voxel-to-world `affine` (RAS+, mm) as NIfTI, atomically."""
    data = np.asarray(data)
    if not np.all(np.isfinite(data)):  # computed here from checked inputs: a bug, not bad input
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise ValueError(f"{path}: refusing to write an image with NaN or Inf voxels ({bad} of {data.size})")
    img = nib.Nifti1Image(data.astype(dtype), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_write(path, suffix=".nii.gz" if str(path).endswith(".gz") else ".nii") as tmp:
        nib.save(img, tmp)


def load_nifti(path, dtype=np.float32, ndim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI of `ndim` dimensions on an axis-aligned RAS+ grid.

    Returns (data (X, Y, Z[, ...]) as `dtype`, affine (4, 4), RAS+ mm, positive diagonal). An image stored
    with flipped or permuted axes (LPS, LAS, ...) is reoriented to RAS+ without resampling, and the
    conversion is logged (see `dlmi.spatial.orientation`).

    A single-file NIfTI whose name says the wrong compression (gzip data named .nii, or plain data named
    .nii.gz) is read by its content, and that is logged.

    Raises InputError naming the file when it is missing, truncated or corrupt (with nibabel's reason), not
    `ndim`-D, holds NaN/Inf voxels or values outside the range of `dtype` (e.g. 300 read as uint8, 1e39
    read as float32), states no orientation (or two that disagree), or has a singular, sheared or oblique
    affine.
    """
    raw, affine = _read_checked(path, dtype, lambda shape: len(shape) == ndim, f"a {ndim}-D image")
    try:
        data, affine, codes = orientation.to_ras(raw, affine)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    if codes != "RAS":
        logging.getLogger("dlmi.io").info("%s: reoriented from %s to RAS+ (axis flips/permutation, no resampling)",
                                          path, codes)
    return np.asarray(data, dtype=dtype), affine


def load_nifti_as_stored(path, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D NIfTI (or 4-D with a single volume) with the affine its header states, in any orientation,
    oblique included: the input of `dlmi.spatial.conform`, the one place that resamples an image on input.

    Returns (data as stored, as `dtype`; the header's voxel-to-world affine (4, 4), mm). Raises InputError as
    `load_nifti` does, but for obliquity (shears and singular affines are refused by `conform`).
    """
    def volume(shape):
        return len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)

    raw, affine = _read_checked(path, dtype, volume, "a 3-D image (or 4-D with one volume)")
    return np.asarray(raw, dtype=dtype), affine


def _read_checked(path, dtype, shape_ok, expected: str) -> tuple[np.ndarray, np.ndarray]:
    """The voxel data and header affine of the NIfTI at `path`, after the checks `load_nifti` documents;
    `shape_ok(shape)` says whether the image's shape is one the caller reads (else: expected `expected`)."""
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    img = _open_nifti(path)
    if not shape_ok(img.shape):
        raise InputError(f"{path}: expected {expected}, got shape {img.shape}")
    try:
        raw = np.asarray(img.dataobj)
    except Exception as err:  # EOFError, zlib.error, OSError... for a truncated or corrupt file
        raise InputError(f"{path}: truncated or corrupt NIfTI (the voxel data cannot be read in full)") from err
    if raw.dtype.kind in "fc" and not np.all(np.isfinite(raw)):
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        raise InputError(f"{path}: image has NaN or Inf voxels ({bad} of {raw.size})")
    _check_range(path, raw, dtype)
    try:
        affine = orientation.header_affine(img.header)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return raw, affine


def _open_nifti(path):
    """nibabel's image of the NIfTI at `path`. nibabel goes by the name: a single-file NIfTI whose name says the
    wrong compression (gzip data named .nii, plain data named .nii.gz) is read by its content instead, and
    that is logged. Raises InputError with nibabel's reason when the file cannot be read."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    name = str(path)
    misnamed = (name.endswith(".nii") and gzipped) or (name.endswith(".nii.gz") and not gzipped)
    content = "gzip-compressed" if gzipped else "not gzip-compressed"
    try:
        if not misnamed:
            return nib.load(name)
        with open(path, "rb") as fh:
            data = fh.read()
        if gzipped:  # a truncated file gives what it holds, and the voxel data check names the truncation
            data = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(data)
        img = nib.Nifti1Image.from_bytes(data)
    except Exception as err:  # nibabel raises several types for files that are not NIfTI
        reason = "nibabel: " + (" ".join(str(err).split()) or type(err).__name__)
        if misnamed:
            reason = f"{content} despite its name, and read as such; {reason}"
        raise InputError(f"{path}: not a NIfTI image, or its header is corrupt ({reason})") from err
    logging.getLogger("dlmi.io").info("%s: read by its content, which is %s despite its name", path, content)
    return img


def _check_range(path, raw: np.ndarray, dtype) -> None:
    """Raise InputError when the voxel values `raw` (any shape) do not fit `dtype`, where the cast would turn
    them into other numbers: inf for floats beyond float32, wrapped values for integers (300 -> 44 in uint8)."""
    target = np.dtype(dtype)
    if raw.size == 0 or raw.dtype.kind not in "iuf" or target.kind not in "iuf":
        return
    if np.can_cast(raw.dtype, target, casting="safe"):  # every value of raw's type fits
        return
    info = np.finfo(target) if target.kind == "f" else np.iinfo(target)
    low, high = raw.min(), raw.max()
    if low < info.min or high > info.max:
        raise InputError(f"{path}: voxel values {low:g} to {high:g} do not fit the {target.name} it is read as "
                         f"(range {info.min:g} to {info.max:g})")


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
    save = np.savez_compressed if compress else np.savez
    with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        save(fh, acquisition=np.array(json.dumps(params, sort_keys=True)), **arrays)


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
    with atomic_write(path, suffix=".tsv") as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def write_json(path, obj) -> None:
    """Write a JSON sidecar, atomically."""
    with atomic_write(path, suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def leftover_temporaries(path) -> list[Path]:
    """Temporary files of `path` that a writer killed mid-write left behind (the names `_atomic_target` makes)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*"))
