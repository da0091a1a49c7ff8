"""dlmi.spatial.conform: a researcher's image (oblique, flipped, anisotropic) onto the study's RAS+ grid,
checked against an analytic image and against SimpleITK's resampler on the same grid."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from dlmi.register import itk
from dlmi.spatial import orientation
from dlmi.spatial.conform import conform
from dlmi.spatial.grid import world_grid

SLOPE, OFFSET = np.array([0.7, -0.4, 1.1]), 50.0  # f(w) = SLOPE . w + OFFSET, world w in mm


def oblique_affine(degrees=(12.0, -7.0, 20.0), sizes=(1.2, 1.0, 1.5), flips=(-1, -1, 1), origin=(60.0, 80.0, -40.0)):
    """An LPS-like (flipped x, y), anisotropic grid rotated away from the world axes."""
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix() @ np.diag(np.multiply(flips, sizes))
    affine[:3, 3] = origin
    return affine


def linear_image(shape, affine):
    return (np.tensordot(SLOPE, world_grid(shape, affine), axes=1) + OFFSET).astype(np.float32)


def interior(shape, affine, out_shape, out_affine, margin=0.0):
    """Output voxels whose world point lies within the input's voxel centres (continuous index in
    [margin, n - 1 - margin]), where trilinear interpolation of a linear function is exact."""
    index = np.tensordot(np.linalg.inv(affine)[:3, :3], world_grid(out_shape, out_affine), axes=1)
    index += np.linalg.inv(affine)[:3, 3][:, None, None, None]
    return np.all((index >= margin) & (index <= np.asarray(shape)[:, None, None, None] - 1 - margin), axis=0)


def test_an_oblique_flipped_anisotropic_image_is_conformed_exactly_for_a_linear_function():
    shape, affine = (40, 36, 28), oblique_affine()
    out, out_affine, record = conform(linear_image(shape, affine), affine, 2.0)
    assert record["resampled"] and record["axis_codes"] == orientation.axis_codes(affine) and record["axis_codes"] != "RAS"
    assert 20.0 < record["obliquity_degrees"] < 30.0 and record["voxel_mm"] == pytest.approx([1.2, 1.0, 1.5])
    assert np.allclose(out_affine[:3, :3], 2.0 * np.eye(3)) and out.dtype == np.float32
    inside = interior(shape, affine, out.shape, out_affine)
    assert inside.sum() > 0.3 * inside.size
    truth = np.tensordot(SLOPE, world_grid(out.shape, out_affine), axes=1) + OFFSET
    # float32 image values of magnitude ~100: trilinear interpolation of a linear function is exact up to rounding
    np.testing.assert_allclose(out[inside], truth[inside], rtol=0, atol=1e-3)


def test_the_conformed_grid_covers_the_field_of_view():
    shape, affine = (30, 25, 20), oblique_affine(degrees=(0, 0, 35.0))
    out, out_affine, _ = conform(np.ones(shape, np.float32), affine, 3.0)
    centres = world_grid(shape, affine).reshape(3, -1)
    lo = out_affine[:3, 3] - 1.5
    hi = lo + 3.0 * np.asarray(out.shape)
    assert np.all(centres.min(axis=1) >= lo) and np.all(centres.max(axis=1) <= hi)
    assert np.all(hi - lo - (centres.max(axis=1) - centres.min(axis=1)) < 3.0 * 2 + 2 * 1.5 + 1e-6)


def test_agrees_with_simpleitk_on_the_same_grid():
    """Same image, same output grid, linear interpolation: our conform against sitk.Resample (peer), on a
    smooth random image, over the output voxels at least one voxel inside the input (the two treat the
    outermost half voxel differently). Tolerance 1e-4 of the image range (float32 arithmetic)."""
    shape, affine = (32, 30, 24), oblique_affine(degrees=(5.0, 3.0, -4.0))
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    image = gaussian_filter(image, 2.0).astype(np.float32)
    out, out_affine, _ = conform(image, affine, 1.5)
    reference = itk.to_sitk_image(np.zeros(out.shape, np.float32), out_affine)
    peer = sitk.Resample(itk.to_sitk_image(image, affine), reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    peer = sitk.GetArrayFromImage(peer).transpose(2, 1, 0)
    inside = interior(shape, affine, out.shape, out_affine, margin=1.0)
    assert inside.sum() > 1000
    span = float(image.max() - image.min())
    assert np.max(np.abs(out[inside] - peer[inside])) < 1e-4 * span


def test_an_axis_aligned_image_at_the_study_resolution_is_not_interpolated():
    shape, affine = (10, 12, 8), np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [9.0, 11.0, -7.0]
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    out, out_affine, record = conform(image, affine, 2.0)
    ras, ras_affine, codes = orientation.to_ras(image, affine)
    assert not record["resampled"] and codes == "LPS" == record["axis_codes"]
    assert np.array_equal(out, ras) and np.array_equal(out_affine, ras_affine)


def test_label_maps_keep_their_labels_and_a_singleton_fourth_axis_is_dropped():
    shape, affine = (20, 20, 16), oblique_affine()
    labels = np.zeros(shape + (1,), np.uint8)
    labels[5:15, 4:16, 3:12, 0] = 7
    labels[8:12, 8:12, 6:9, 0] = 3
    out, _, _ = conform(labels, affine, 2.0, order=0)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 3, 7}


@pytest.mark.parametrize("problem", ["sheared", "two volumes", "voxel size"])
def test_bad_images_are_refused(problem):
    shape, affine, size = (8, 8, 8, 1), np.eye(4), 1.0
    if problem == "sheared":
        affine[0, 1] = 0.3
    elif problem == "two volumes":
        shape = (8, 8, 8, 2)
    else:
        size = 0.0
    with pytest.raises(ValueError, match={"sheared": "sheared", "two volumes": "3-D", "voxel size": "positive"}[problem]):
        conform(np.zeros(shape, np.float32), affine, size)


def test_an_oblique_scan_is_read_as_stored(tmp_path):
    """dlmi.io.load_nifti_as_stored keeps the header's oblique affine (load_nifti refuses it) and a singleton
    4th axis, for conform to resample."""
    import nibabel as nib

    from dlmi import io

    affine = oblique_affine()
    path = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(linear_image((20, 18, 14), affine)[..., None], affine), str(path))
    with pytest.raises(io.InputError, match="oblique"):
        io.load_nifti(path)
    stored, stored_affine = io.load_nifti_as_stored(path)
    assert stored.shape == (20, 18, 14, 1)
    np.testing.assert_allclose(stored_affine, affine, atol=1e-5)


def test_a_scan_is_skull_stripped_when_the_faces_of_its_grid_are_zero():
    from dlmi.spatial.conform import looks_skull_stripped

    brain = np.zeros((10, 10, 10), np.float32)
    brain[2:8, 2:8, 2:8] = 1.0
    assert looks_skull_stripped(brain)
    head = brain.copy()
    head[:, :, 0] = 0.01  # noise or the neck at one border: a head scan
    assert not looks_skull_stripped(head)
