"""A small BIDS dataset of real images, built at test time from what installed packages ship (nilearn's MNI152
T1, nibabel's test anatomy), with the troubles of scanner data and of real datasets:

- sub-01: MNI152 moved by a known rigid transform (12.5 degrees, 16.9 mm), a smooth warp, a bias field (x0.79 to
  x1.27 across the brain) and noise, on an oblique grid (5 degrees) of anisotropic voxels (AD), and dipy's small
  DWI beside it;
- sub-02: another known transform, stored in LPS axis order with 2.2 mm voxels (CN);
- sub-03: two sessions, two runs in the first (CN); sub-04: a third transform, a 4-D file with one volume (AD);
- sub-05: nibabel's anatomical.nii (LAS, 2 mm), diagnosis "MCI", outside the default mapping;
- sub-06: a participants row without images; sub-07: an image whose name is not BIDS (`T1w.nii.gz`);
- sub-08: images without a participants row; sub-09: a T2w image and no T1w.

The transforms are world maps from template (MNI) space to the scan's space, as register_t1 estimates them
(`from-T1w_to-template_mode-image_xfm.txt` holds the template -> T1w point map). Resampling here uses
scipy's map_coordinates, not the workflow's own resampler.
"""
from __future__ import annotations

import json
import locale
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

CENTRE = np.array([0.0, -18.0, 8.0])  # about the middle of the MNI brain, mm


def rigid(degrees, translation_mm) -> np.ndarray:
    """4x4 world map: rotation (x, y, z Euler angles, degrees) about CENTRE, then a translation."""
    matrix = np.eye(4)
    rotation = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    matrix[:3, :3] = rotation
    matrix[:3, 3] = CENTRE - rotation @ CENTRE + np.asarray(translation_mm, float)
    return matrix


TRANSFORMS = {"01": rigid((10.0, -4.0, 6.0), (14.0, -8.0, 5.0)), "02": rigid((-8.0, 5.0, -3.0), (-10.0, 6.0, 12.0)),
              "03": rigid((3.0, 2.0, -4.0), (4.0, 3.0, -6.0)), "04": rigid((-5.0, -6.0, 8.0), (8.0, 10.0, 4.0))}


def mni_t1() -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI152 T1 template at 2 mm (skull-stripped: 0 outside its brain mask, 0-1) and its affine."""
    from nilearn import datasets

    img = datasets.load_mni152_template(resolution=2)
    brain = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0.5  # 0 outside, as a stripped scan
    return np.asarray(img.get_fdata() * brain, np.float32), img.affine


def grid_affine(voxel_mm, degrees=(0.0, 0.0, 0.0), flips=(1, 1, 1)) -> np.ndarray:
    """An (oblique, flipped) grid's affine with voxel sizes `voxel_mm`, origin set later by `covering`."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix() @ np.diag(
        np.multiply(flips, voxel_mm))
    return affine


def covering(affine: np.ndarray, centre_mm, extent_mm=(190.0, 230.0, 190.0)) -> tuple[tuple, np.ndarray]:
    """The shape and affine of a grid with `affine`'s axes, centred on `centre_mm`, covering `extent_mm`."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    shape = tuple(int(np.ceil(e / s)) for e, s in zip(extent_mm, sizes))
    out = affine.copy()
    out[:3, 3] = np.asarray(centre_mm) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, out


def scan(source, source_affine, transform, shape, affine, *, warp_mm=2.0, bias=0.25, noise=0.02, seed=0):
    """The image a scanner would give of `source` moved by `transform` (template -> scan world map): at each
    voxel's world point p, source(transform^-1 (p + warp(p))) times a smooth bias field, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ index + affine[:3, 3:4]
    phase = (world - CENTRE[:, None]) * (2 * np.pi / 140.0)
    warped = world + warp_mm * np.sin(phase[[1, 2, 0]])  # smooth, a few mm, no fold
    template_point = np.linalg.inv(transform) @ np.vstack([warped, np.ones(warped.shape[1])])
    source_index = np.linalg.inv(source_affine) @ template_point
    values = map_coordinates(source, source_index[:3], order=1, mode="constant", cval=0.0)
    field = np.exp(bias * ((world[0] - CENTRE[0]) / 90.0 + 0.5 * (world[2] - CENTRE[2]) / 90.0))
    values = values * field + noise * rng.standard_normal(values.shape) * (values > 0)
    return (np.clip(values, 0, None) * 1000).reshape(shape).astype(np.float32)


def write_nifti(path: Path, data, affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def build(root: Path) -> dict:
    """Write the dataset under `root`; returns {"transforms": subject -> 4x4 template -> scan map}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "dlmi-workflow test dataset",
                                                                "BIDSVersion": "1.9.0"}))
    source, source_affine = mni_t1()
    centre = CENTRE
    # sub-01: oblique, anisotropic
    shape, affine = covering(grid_affine((2.0, 2.0, 2.4), degrees=(5.0, 0.0, 3.0)), TRANSFORMS["01"][:3, :3] @
                             centre + TRANSFORMS["01"][:3, 3])
    write_nifti(root / "sub-01/anat/sub-01_T1w.nii.gz",
                scan(source, source_affine, TRANSFORMS["01"], shape, affine, seed=1), affine)
    # sub-01 also has dipy's small DWI (64 directions, with .bval and .bvec): no T1w, so not analysed
    from dipy.data import get_fnames

    dwi, bval, bvec = get_fnames(name="small_64D")
    (root / "sub-01/dwi").mkdir(parents=True)
    nib.save(nib.load(str(dwi)), str(root / "sub-01/dwi/sub-01_dwi.nii.gz"))
    shutil.copy(bval, root / "sub-01/dwi/sub-01_dwi.bval")
    shutil.copy(bvec, root / "sub-01/dwi/sub-01_dwi.bvec")
    # sub-02: LPS axis order
    shape, affine = covering(grid_affine((2.2, 2.2, 2.2), flips=(-1, -1, 1)), centre)
    write_nifti(root / "sub-02/anat/sub-02_T1w.nii.gz",
                scan(source, source_affine, TRANSFORMS["02"], shape, affine, seed=2), affine)
    # sub-03: two sessions, two runs in ses-01 (run-2 is the one analysed: input.run last)
    shape, affine = covering(grid_affine((2.0, 2.0, 2.0)), centre)
    for session, run, seed in (("01", 1, 31), ("01", 2, 32), ("02", 1, 33)):
        data = scan(source, source_affine, TRANSFORMS["03"], shape, affine, seed=seed)
        write_nifti(root / f"sub-03/ses-{session}/anat/sub-03_ses-{session}_run-{run}_T1w.nii.gz", data, affine)
    # sub-04: a 4-D file with one volume
    data = scan(source, source_affine, TRANSFORMS["04"], shape, affine, seed=4)
    write_nifti(root / "sub-04/anat/sub-04_T1w.nii.gz", data[..., None], affine)
    # sub-05: nibabel's test anatomy
    anatomy = nib.load(str(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"))
    write_nifti(root / "sub-05/anat/sub-05_T1w.nii.gz", np.asarray(anatomy.dataobj, np.float32), anatomy.affine)
    # sub-07: not a BIDS name; sub-08: no participants row
    write_nifti(root / "sub-07/anat/T1w.nii.gz", data, affine)
    write_nifti(root / "sub-08/anat/sub-08_T1w.nii.gz",
                scan(source, source_affine, np.eye(4), shape, affine, seed=8), affine)
    # sub-09: no T1w image, only a T2w
    write_nifti(root / "sub-09/anat/sub-09_T2w.nii.gz", data, affine)
    rows = [("sub-01", "AD"), ("sub-02", "CN"), ("sub-03", "CN"), ("sub-04", "AD"), ("sub-05", "MCI"),
            ("sub-06", "CN"), ("sub-07", "CN")]
    (root / "participants.tsv").write_text("participant_id\tdiagnosis\tage\n"
                                           + "".join(f"{p}\t{g}\t70\n" for p, g in rows))
    return {"transforms": TRANSFORMS}


def write_dicom_series(data, affine, folder: Path, description: str, patient: str, series: int = 1) -> None:
    """Write an (X, Y, Z) volume with its RAS+ affine as a multi-slice DICOM MR series (one int16 file per
    slice) with SimpleITK, its geometry in DICOM's LPS patient coordinates."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.int16).transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        _write_slices(writer, image, folder, description, patient, series, spacing)
    finally:  # GDCM's DICOM writer sets the C locale, which makes Python's text encoding ASCII afterwards
        locale.setlocale(locale.LC_ALL, saved)


def _write_slices(writer, image, folder, description, patient, series, spacing) -> None:
    direction = image.GetDirection()
    study_uid, series_uid = f"1.2.826.0.1.3680043.2.1125.{patient}", f"1.2.826.0.1.3680043.2.1125.{patient}.{series}"
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {"0008|0060": "MR", "0008|0008": "ORIGINAL\\PRIMARY", "0008|103e": description,
                "0018|1030": description, "0010|0020": patient, "0010|0010": f"Test^{patient}",
                "0020|000d": study_uid, "0020|000e": series_uid, "0020|0011": str(series),
                "0020|0013": str(k + 1), "0018|0050": f"{spacing[2]:.6f}", "0018|0088": f"{spacing[2]:.6f}",
                "0008|0020": "20260101", "0008|0030": "120000", "0008|0021": "20260101", "0008|0031": "120000",
                "0008|0070": "dlmi-workflow test", "0018|5100": "HFS",
                "0020|0037": "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                            direction[1], direction[4], direction[7])),
                "0020|0032": "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                "0008|0018": f"{series_uid}.{k + 1}", "0028|1050": "500", "0028|1051": "1000"}
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k + 1:04d}.dcm"))
        writer.Execute(slice_)
