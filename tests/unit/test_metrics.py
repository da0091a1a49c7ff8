import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio

from dlmi import figures
from dlmi.analysis import metrics


def test_nrmse_and_psnr_match_scikit_image():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 5, (10, 11, 12))
    estimate = truth + rng.normal(0, 0.1, truth.shape)
    assert metrics.nrmse(estimate, truth) == pytest.approx(normalized_root_mse(truth, estimate, normalization="min-max"))
    assert metrics.psnr(estimate, truth) == pytest.approx(
        peak_signal_noise_ratio(truth, estimate, data_range=truth.max() - truth.min())
    )


def test_dice_and_volume_error():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert metrics.dice(a, b) == pytest.approx(0.5)
    assert metrics.dice(a, a) == 1.0
    assert metrics.volume_error_percent(90.0, 100.0) == pytest.approx(-10.0)


def test_mid_slices_are_radiological():
    # RAS+: +x is the patient's right, +y anterior, +z superior.
    volume = np.zeros((5, 6, 7))
    volume[4, 3, 3] = 1.0  # far right, mid
    volume[2, 5, 3] = 2.0  # most anterior
    volume[2, 3, 6] = 3.0  # most superior
    sagittal, coronal, axial = figures.mid_slices(volume)
    assert axial[0, 2] == 2.0  # anterior at the top of the axial view
    assert axial[2, 0] == 1.0  # the patient's right on the viewer's left
    assert coronal[3, 0] == 1.0 and coronal[0, 2] == 3.0  # right on the left, superior at the top
    assert sagittal[0, 3] == 3.0 and sagittal[3, 5] == 2.0  # superior up, anterior on the right


def test_dice_and_label_dice():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert metrics.dice(a, b) == pytest.approx(0.5)
    assert metrics.dice(a, a) == 1.0 and metrics.dice(np.zeros(3), np.zeros(3)) == 1.0
    assert metrics.dice(torch.from_numpy(a), torch.from_numpy(~a)) == 0.0
    la, lb = a.astype(int) + 2 * (~a), b.astype(int) + 2 * (~b)
    out = metrics.label_dice(la, lb, [1, 2, 3])
    assert out[1] == pytest.approx(0.5) and out[2] == pytest.approx(0.5) and out[3] == 1.0
    with pytest.raises(ValueError, match="shape"):
        metrics.dice(a, b[:2])


def sphere(n: int, centre, radius: float, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1) * np.asarray(spacing)
    return np.linalg.norm(grid - np.asarray(centre), axis=-1) <= radius


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 1.5)])
def test_hausdorff95_of_concentric_spheres_is_the_difference_of_radii(spacing):
    """Every surface point of one sphere is r2 - r1 from the other's surface: the 95 % (and 100 %) distance is
    r2 - r1 within a voxel."""
    h = spacing[0]
    centre = [16 * h] * 3
    inner, outer = sphere(32, centre, 6 * h, spacing), sphere(32, centre, 11 * h, spacing)
    assert abs(metrics.hausdorff95(inner, outer, spacing) - 5 * h) <= h
    assert abs(metrics.hausdorff_distance(inner, outer, spacing) - 5 * h) <= h
    assert metrics.hausdorff95(outer, outer, spacing) == 0.0


def test_hausdorff_maximum_agrees_with_simpleitk():
    """SimpleITK's HausdorffDistanceImageFilter (all voxels, not surfaces) on two offset spheres and on
    concentric ones with anisotropic voxels: for these shapes the farthest points lie on the surfaces, so
    MONAI's surface distance at percentile 100 equals it."""
    spacing = (1.0, 1.5, 2.0)
    cases = [
        (sphere(32, (14, 20, 28), 8, spacing), sphere(32, (19, 23, 30), 8, spacing)),
        (sphere(32, (16, 24, 32), 5, spacing), sphere(32, (16, 24, 32), 11, spacing)),
    ]
    for a, b in cases:
        images = []
        for mask in (a, b):
            image = sitk.GetImageFromArray(mask.astype(np.uint8).transpose(2, 1, 0))  # sitk wants (Z, Y, X)
            image.SetSpacing(spacing)
            images.append(image)
        peer = sitk.HausdorffDistanceImageFilter()
        peer.Execute(*images)
        assert metrics.hausdorff_distance(a, b, spacing) == pytest.approx(peer.GetHausdorffDistance(), abs=1e-4)


def test_hausdorff_of_empty_masks():
    empty, full = np.zeros((8, 8, 8), bool), np.ones((8, 8, 8), bool)
    assert metrics.hausdorff95(empty, empty, (1, 1, 1)) == 0.0
    assert math.isinf(metrics.hausdorff95(empty, full, (1, 1, 1)))
