"""Tests of dlmi.register.linear: resampling, affine (NCC) and rigid (MI) registration, ITK/ANTs transform files.

Synthetic data: a smooth, asymmetric head-like phantom (nested ellipsoids with soft edges plus blobs)
evaluated analytically at world points, so the moving image of a known transform T (fixed -> moving) is
exact: moving(y) = phantom(T^-1(y)), i.e. moving(T(x)) = fixed(x).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dlmi.register import itk
from dlmi.register import linear as reg
from dlmi.spatial import grid, resampling

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_registration import sitk_affine  # the same SimpleITK set-up as the benchmark

# (centre mm, semi-axes mm, T1-like intensity, PET-like intensity); later regions paint over earlier ones
REGIONS = [
    ((0, 0, 0), (55, 68, 58), 0.6, 0.15),      # scalp
    ((0, 0, 2), (50, 63, 53), 0.15, 0.0),      # skull
    ((0, 0, 3), (46, 59, 49), 0.35, 0.9),      # grey matter
    ((0, -2, 6), (36, 48, 37), 0.85, 0.35),    # white matter
    ((6, 8, 8), (6, 14, 9), 0.2, 0.05),        # ventricles
    ((-5, 8, 9), (5, 13, 8), 0.2, 0.05),
    ((22, -30, -10), (9, 7, 6), 0.55, 1.3),    # asymmetric blobs
    ((-18, 30, 20), (6, 10, 5), 0.1, 0.5),
    ((10, 40, -25), (7, 6, 9), 1.0, 0.7),
    ((0, 62, -30), (14, 12, 16), 0.6, 0.15),   # face
    ((0, -45, -38), (26, 16, 12), 0.45, 0.8),  # cerebellum
    ((-30, 10, 30), (10, 20, 8), 0.9, 0.3),    # lesion
]


def head(points: np.ndarray, contrast: str = "t1", edge_mm: float = 2.0) -> np.ndarray:
    """Phantom intensity at world points (..., 3) mm; soft edges of about `edge_mm`."""
    col = 2 if contrast == "t1" else 3
    out = np.zeros(points.shape[:-1])
    for region in REGIONS:
        c, r, value = np.array(region[0], float), np.array(region[1], float), region[col]
        d = np.sqrt((((points - c) / r) ** 2).sum(-1))
        inside = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * r.mean() / edge_mm, -50, 50)))
        out = out * (1.0 - inside) + value * inside
    return out


def grid_affine(shape, spacing, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """RAS+ affine of an isotropic grid centred on the world origin plus `shift` (mm)."""
    a = np.diag([spacing, spacing, spacing, 1.0])
    a[:3, 3] = -spacing * (np.array(shape) - 1) / 2.0 + np.asarray(shift)
    return a


def grid_points(shape, affine) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(float)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def moving_image(T, shape, affine, **kw) -> np.ndarray:
    """The phantom seen through T (fixed -> moving): moving(y) = phantom(T^-1 y) on the moving grid."""
    pts = grid_points(shape, affine)
    return head(grid.transform_points(grid.invert(T), pts.reshape(-1, 3)).reshape(pts.shape), **kw).astype(np.float32)


def random_affine(rng, rot_deg=10.0, scale=0.1, shear=0.05, trans_mm=10.0) -> np.ndarray:
    """Random 12-parameter transform about the world origin (the phantom's centre)."""
    R = Rotation.from_euler("xyz", rng.uniform(-rot_deg, rot_deg, 3), degrees=True).as_matrix()
    S = np.diag(rng.uniform(1 - scale, 1 + scale, 3))
    H = np.eye(3)
    H[0, 1], H[0, 2], H[1, 2] = rng.uniform(-shear, shear, 3)
    T = np.eye(4)
    T[:3, :3] = R @ S @ H
    T[:3, 3] = rng.uniform(-trans_mm, trans_mm, 3)
    return T


def random_rigid(rng, rot_deg=10.0, trans_mm=10.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", rng.uniform(-rot_deg, rot_deg, 3), degrees=True).as_matrix()
    T[:3, 3] = rng.uniform(-trans_mm, trans_mm, 3)
    return T


@pytest.fixture(scope="module")
def affine_case():
    """64^3 grids at 3 mm (moving grid shifted), and a random 12-parameter transform."""
    torch.set_num_threads(2)
    shape = (64, 64, 64)
    A_f = grid_affine(shape, 3.0)
    A_m = grid_affine(shape, 3.0, shift=(3.0, -4.0, 2.0))
    T = random_affine(np.random.default_rng(7))
    fixed = head(grid_points(shape, A_f)).astype(np.float32)
    return fixed, moving_image(T, shape, A_m), A_f, A_m, T


# ---------------------------------------------------------------------------------------------------------
# resampling


def test_world_grid_matches_nibabel_apply_affine():
    """The one world-grid helper against nibabel's apply_affine on an oblique, anisotropic, non-RAS grid
    (float64; both compute affine @ index, so they agree to a few ulp)."""
    from nibabel.affines import apply_affine

    shape = (5, 4, 3)
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", [10, -25, 40], degrees=True).as_matrix() @ np.diag([1.5, -2.0, 3.0])
    affine[:3, 3] = [-80.0, 12.5, 33.0]
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    expected = np.moveaxis(apply_affine(affine, index), -1, 0)
    world = grid.world_grid(shape, affine)
    assert world.shape == (3, *shape) and world.dtype == np.float64
    np.testing.assert_allclose(world, expected, rtol=0, atol=1e-12)
    assert np.array_equal(grid.world_grid(shape, np.diag([2.0, 2.0, 2.0, 1.0]))[0, :, 0, 0], [0, 2, 4, 6, 8])


def test_resample_identity_is_exact_numpy_and_torch():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(9, 7, 5)).astype(np.float32)
    A = np.array([[0, 0, 2.5, 10], [-1.5, 0, 0, 3], [0, 2, 0, -7], [0, 0, 0, 1]], float)  # oblique axes
    out = resampling.resample(vol, A, vol.shape, A)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, vol)
    out_t = resampling.resample(torch.from_numpy(vol), A, vol.shape, A, np.eye(4))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), vol)


def test_resample_integer_shift_exact_and_fill():
    vol = np.arange(6 * 5 * 4, dtype=np.float64).reshape(6, 5, 4)
    A = grid_affine(vol.shape, 2.0)
    T = np.eye(4)
    T[:3, 3] = (4.0, 0.0, -2.0)  # fixed point x samples moving at x + (2, 0, -1) voxels
    out = resampling.resample(vol, A, vol.shape, A, T, fill=-1.0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[:4, :, 1:], vol[2:, :, :3])
    assert np.all(out[4:] == -1.0) and np.all(out[:, :, 0] == -1.0)


def test_resample_half_voxel_linear_and_nearest_labels():
    vol = np.zeros((4, 4, 4), np.float32)
    vol[2:] = 1.0
    A = np.eye(4)
    T = np.eye(4)
    T[0, 3] = 0.5
    out = resampling.resample(vol, A, vol.shape, A, T)
    np.testing.assert_allclose(out[1, 1, 1], 0.5)
    labels = np.zeros((4, 4, 4), np.int16)
    labels[2:] = 3
    near = resampling.resample(labels, A, labels.shape, A, T, order=0)
    assert near.dtype == np.int16
    assert near[1, 0, 0] == 3 and near[0, 0, 0] == 0  # 1.5 rounds up to voxel 2, as in ITK
    assert near[3, 0, 0] == 3  # 3.5 is still inside (the voxel's edge): edge value


def test_resample_matches_analytic_moving_image(affine_case):
    fixed, moving, A_f, A_m, T = affine_case
    out = resampling.resample(moving, A_m, fixed.shape, A_f, T)
    # interpolation error of a soft-edged (2 mm) phantom on a 3-mm grid
    assert np.abs(out - fixed)[8:-8, 8:-8, 8:-8].max() < 0.1
    assert np.abs(out - fixed)[8:-8, 8:-8, 8:-8].mean() < 0.005


# ---------------------------------------------------------------------------------------------------------
# registration


def test_affine_registration_recovers_random_transform(affine_case):
    fixed, moving, A_f, A_m, T = affine_case
    T0 = reg.affine_register(fixed, moving, A_f, A_m, init="identity", levels=(1,), iterations=(0,))
    assert grid.corner_error_mm(T0, T, fixed.shape, A_f) > 20.0  # the problem is not trivial
    T_est = reg.affine_register(fixed, moving, A_f, A_m)
    assert grid.corner_error_mm(T_est, T, fixed.shape, A_f) < 1.0
    # torch input gives the same answer
    T_t = reg.affine_register(torch.from_numpy(fixed), torch.from_numpy(moving), A_f, A_m)
    np.testing.assert_allclose(T_t, T_est, atol=1e-6)


def test_rigid_mi_recovers_transform_between_contrasts_and_grids():
    """PET-like moving on a 4-mm grid (remapped, non-monotonic contrast + noise), T1-like fixed on 2 mm."""
    torch.set_num_threads(2)
    fs, ms = (80, 96, 80), (44, 48, 44)
    A_f = grid_affine(fs, 2.0)
    A_m = grid_affine(ms, 4.0, shift=(2.0, -3.0, 4.0))
    T = random_rigid(np.random.default_rng(3))
    fixed = head(grid_points(fs, A_f)).astype(np.float32)
    moving = moving_image(T, ms, A_m, contrast="pet")
    moving += np.random.default_rng(4).normal(0.0, 0.01, moving.shape).astype(np.float32)
    T_est = reg.rigid_register(fixed, moving, A_f, A_m)
    assert np.allclose(T_est[:3, :3] @ T_est[:3, :3].T, np.eye(3), atol=1e-9)  # rigid
    assert grid.corner_error_mm(T_est, T, fs, A_f) < 2.0


def test_registration_rejects_bad_arguments(affine_case):
    fixed, moving, A_f, A_m, _ = affine_case
    with pytest.raises(ValueError, match="metric"):
        reg.affine_register(fixed, moving, A_f, A_m, metric="ssd")
    with pytest.raises(ValueError, match="same length"):
        reg.affine_register(fixed, moving, A_f, A_m, levels=(2, 1), iterations=(5,))
    with pytest.raises(ValueError, match="4x4"):
        reg.affine_register(fixed, moving, A_f[:3], A_m)


# ---------------------------------------------------------------------------------------------------------
# ITK / SimpleITK / ANTs


def test_transform_file_round_trip(tmp_path):
    T = random_affine(np.random.default_rng(1))
    for name in ("t.mat", "t.txt", "t.tfm"):
        itk.write_transform(tmp_path / name, T)
        np.testing.assert_allclose(itk.read_transform(tmp_path / name), T, atol=1e-9)
    with pytest.raises(ValueError, match=r"bad\.txt"):
        (tmp_path / "bad.txt").write_text("not a transform\n")
        itk.read_transform(tmp_path / "bad.txt")


def test_simpleitk_resample_with_written_transform_matches_ours(tmp_path, affine_case):
    sitk = pytest.importorskip("SimpleITK")
    _, _, _, _, T = affine_case
    shape_m, shape_f = (40, 44, 36), (48, 40, 44)
    # oblique, anisotropic, axis-flipped grids so that any RAS/LPS or axis-order slip shows
    rot = Rotation.from_euler("xyz", (8, -5, 12), degrees=True).as_matrix()
    A_m = np.eye(4)
    A_m[:3, :3] = rot @ np.diag([4.0, -4.5, 4.2])
    A_m[:3, 3] = -A_m[:3, :3] @ ((np.array(shape_m) - 1) / 2.0) + (3.0, -2.0, 5.0)
    A_f = np.eye(4)
    A_f[:3, :3] = np.diag([-3.5, 3.5, 3.8])
    A_f[:3, 3] = -A_f[:3, :3] @ ((np.array(shape_f) - 1) / 2.0)
    moving = head(grid_points(shape_m, A_m), edge_mm=4.0).astype(np.float32)
    path = tmp_path / "affine.mat"
    itk.write_transform(path, T)

    ours = resampling.resample(moving, A_m, shape_f, A_f, T)
    img_m = itk.to_sitk_image(moving, A_m)
    ref = itk.to_sitk_image(np.zeros(shape_f, np.float32), A_f)
    theirs = sitk.GetArrayFromImage(sitk.Resample(img_m, ref, sitk.ReadTransform(str(path)), sitk.sitkLinear,
                                                  0.0, sitk.sitkFloat32)).transpose(2, 1, 0)
    # ITK's inside test differs from ours only by rounding at the outermost half voxel: compare away from it
    pts = grid.transform_points(np.linalg.inv(A_m) @ T @ A_f, np.indices(shape_f).reshape(3, -1).T)
    away = np.all((pts > 0.5) & (pts < np.array(shape_m) - 1.5), axis=1).reshape(shape_f)
    assert away.sum() > 0.3 * away.size
    assert np.abs(ours - theirs)[away].max() < 1e-3 * np.ptp(moving)
    # and the geometry of the image built from array + affine is the one we mean
    idx = (5, 7, 3)
    np.testing.assert_allclose(img_m.TransformIndexToPhysicalPoint(idx),
                               np.diag([-1, -1, 1]) @ grid.transform_points(A_m, idx), atol=1e-9)


def test_ants_reads_our_transform_file(tmp_path):
    ants = pytest.importorskip("ants")
    T = random_affine(np.random.default_rng(2))
    path = tmp_path / "affine.mat"
    itk.write_transform(path, T)
    tx = ants.read_transform(str(path))
    flip = np.diag([-1.0, -1.0, 1.0])
    for p_ras in ([10.0, -20.0, 30.0], [-55.0, 40.0, -12.5]):
        p_lps = flip @ np.array(p_ras)
        mapped_lps = np.array(tx.apply_to_point(tuple(p_lps)))
        np.testing.assert_allclose(flip @ mapped_lps, grid.transform_points(T, p_ras), atol=1e-4)


def test_simpleitk_affine_registration_on_same_data(affine_case):
    """SimpleITK's own multi-resolution affine registration (correlation metric) on the same images: both
    reach < 1 mm corner error, ours no worse than SimpleITK's + 0.5 mm."""
    sitk = pytest.importorskip("SimpleITK")
    fixed, moving, A_f, A_m, T = affine_case
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    T_sitk = itk.from_sitk_transform(sitk_affine(itk.to_sitk_image(fixed, A_f), itk.to_sitk_image(moving, A_m)))
    err_sitk = grid.corner_error_mm(T_sitk, T, fixed.shape, A_f)
    err_ours = grid.corner_error_mm(reg.affine_register(fixed, moving, A_f, A_m), T, fixed.shape, A_f)
    assert err_sitk < 1.0
    assert err_ours < 1.0
    assert err_ours <= err_sitk + 0.5


# ---------------------------------------------------------------------------------------------------------
# helpers and overlap


def test_points_inverse_and_corner_error():
    T = random_affine(np.random.default_rng(5))
    p = np.random.default_rng(6).normal(size=(10, 3)) * 50
    np.testing.assert_allclose(grid.transform_points(grid.invert(T), grid.transform_points(T, p)), p, atol=1e-9)
    assert grid.transform_points(T, p[0]).shape == (3,)
    shift = np.eye(4)
    shift[:3, 3] = (3.0, 4.0, 0.0)
    assert grid.corner_error_mm(shift, np.eye(4), (10, 10, 10), np.eye(4)) == pytest.approx(5.0)
    scale = np.diag([2.0, 1.0, 1.0, 1.0])  # about the world origin = voxel 0: largest error at x = 9
    assert grid.corner_error_mm(scale, np.eye(4), (10, 10, 10), np.eye(4)) == pytest.approx(9.0)
