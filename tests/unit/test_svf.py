"""Tests of dlmi.register.svf: stationary-velocity-field (SVF) registration on top of an affine.

Synthetic data: a head-like phantom (nested ellipsoids, blobs, two "hippocampi" of about 2.5 mL each and
ventricles) evaluated analytically at world points on a 48^3 3-mm template grid. The subject is the phantom
deformed by a known smooth random SVF v_true (on the template grid) and a known small affine T (template
world -> subject world): subject(y) = phantom(psi(y)), psi(y) = x0 + u_inv(x0), x0 = T^-1(y), u_inv the
displacement of exp(-v_true) (computed here by scipy interpolation, independently of dlmi's sampling). The
true subject-space labels are the analytic labels at psi(y).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from dlmi.analysis import metrics
from dlmi.register import itk
from dlmi.register import svf as dfm
from dlmi.spatial import grid, resampling

# (centre mm, semi-axes mm, intensity, label); later regions paint over earlier ones
REGIONS = [
    ((0, 0, 0), (50, 60, 52), 0.6, 0),         # scalp
    ((0, 0, 2), (46, 56, 48), 0.15, 0),        # skull
    ((0, 0, 3), (42, 52, 44), 0.4, 0),         # grey matter
    ((0, -2, 6), (33, 42, 33), 0.85, 0),       # white matter
    ((6, 8, 10), (5, 13, 8), 0.15, 2),         # ventricles (label 2)
    ((-6, 8, 10), (5, 13, 8), 0.15, 2),
    ((22, -5, -12), (6, 14, 7), 0.45, 1),      # hippocampi (label 1), ~2.5 mL each
    ((-22, -5, -12), (6, 14, 7), 0.45, 1),
    ((20, -30, 14), (8, 6, 6), 0.3, 0),        # asymmetric blobs
    ((-16, 28, 20), (6, 9, 5), 0.1, 0),
    ((8, 34, -20), (7, 6, 8), 1.0, 0),
    ((0, -40, -30), (22, 12, 10), 0.55, 0),    # cerebellum
]
SPACING = 3.0
T_SHAPE = (48, 48, 48)
T_AFFINE = np.array([[SPACING, 0, 0, -70.5], [0, SPACING, 0, -72.0], [0, 0, SPACING, -69.0], [0, 0, 0, 1.0]])
S_SHAPE = (46, 50, 44)
S_AFFINE = np.array([[SPACING, 0, 0, -66.0], [0, SPACING, 0, -76.5], [0, 0, SPACING, -63.0], [0, 0, 0, 1.0]])


def phantom(points: np.ndarray, edge_mm: float = 1.5):
    """(intensity, label) at world points (..., 3) mm; soft intensity edges of about `edge_mm`."""
    img = np.zeros(points.shape[:-1])
    lab = np.zeros(points.shape[:-1], dtype=np.int16)
    for c, r, value, label in REGIONS:
        c, r = np.array(c, float), np.array(r, float)
        d = np.sqrt((((points - c) / r) ** 2).sum(-1))
        w = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * r.mean() / edge_mm, -50, 50)))
        img = (1 - w) * img + w * value
        lab = np.where(d <= 1.0, label, lab)
    return img.astype(np.float32), lab


def world_points(shape, affine):
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def true_affine():
    rot = Rotation.from_euler("xyz", [3.0, -2.0, 4.0], degrees=True).as_matrix()
    T = np.eye(4)
    T[:3, :3] = rot @ np.diag([1.03, 0.98, 1.02])
    T[:3, 3] = [2.5, -3.0, 1.5]
    return T


def random_velocity(seed: int = 7, bumps: int = 10, width_mm: float = 11.0, amplitude_mm: float = 6.0):
    """A smooth SVF (3, *T_SHAPE) mm: Gaussian bumps (sigma `width_mm`) of random vector amplitude (norm
    `amplitude_mm`) at random centres within the brain, plus one at each hippocampus (a local shape change
    that no affine can undo)."""
    rng = np.random.default_rng(seed)
    x = world_points(T_SHAPE, T_AFFINE)
    centres = list(rng.uniform(-30, 30, (bumps, 3))) + [np.array([22.0, -5, -12]), np.array([-22.0, -5, -12])]
    vectors = rng.standard_normal((len(centres), 3))
    vectors[-2:] = [[1.0, 0.3, 0.6], [0.8, -0.4, -0.7]]
    v = np.zeros((*T_SHAPE, 3))
    for c, a in zip(centres, vectors):
        g = np.exp(-0.5 * (((x - c) / width_mm) ** 2).sum(-1))
        v += g[..., None] * (amplitude_mm * a / np.linalg.norm(a))
    return torch.from_numpy(np.moveaxis(v, -1, 0).astype(np.float32))


def make_case() -> dict:
    """Template image/labels, subject image/labels (truth), the true affine and SVF."""
    template, t_lab = phantom(world_points(T_SHAPE, T_AFFINE))
    T = true_affine()
    v_true = random_velocity()
    u_inv = dfm.displacement(v_true, T_AFFINE, inverse=True).numpy()
    y = world_points(S_SHAPE, S_AFFINE)
    x0 = grid.transform_points(np.linalg.inv(T), y.reshape(-1, 3))
    idx = grid.transform_points(np.linalg.inv(T_AFFINE), x0).T
    u = np.stack([map_coordinates(u_inv[c], idx, order=1, mode="nearest") for c in range(3)], axis=-1)
    subject, s_lab = phantom((x0 + u).reshape(*S_SHAPE, 3))
    rng = np.random.default_rng(3)
    subject = subject + rng.normal(0, 0.01, subject.shape).astype(np.float32)
    return {"template": template, "t_lab": t_lab, "subject": subject, "s_lab": s_lab, "T": T, "v_true": v_true}


@pytest.fixture(scope="module")
def case():
    return make_case()


@pytest.fixture(scope="module")
def estimate(case):
    """Our SVF registration of the case (template fixed, subject moving, the true affine given)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    v = dfm.svf_register(case["template"], case["subject"], T_AFFINE, S_AFFINE, case["T"], levels=(2, 1),
                         iterations=(40, 30), regularization=0.01)
    return v, time.perf_counter() - t0


def test_exp_inverse_consistency_and_jacobian(case, estimate):
    """exp(v) o exp(-v) = identity: max residual < 0.1 voxel for the true field (measured 0.089), < 0.2
    voxel for the estimated one (measured 0.126; mean 0.0035; trilinear interpolation error where the field
    is sharpest); det J > 0 for both."""
    for v, tol in ((case["v_true"], 0.1), (estimate[0], 0.2)):
        u = dfm.displacement(v, T_AFFINE)
        u_inv = dfm.displacement(v, T_AFFINE, inverse=True)
        # (exp(v) o exp(-v))(x) - x = u_inv(x) + u(x + u_inv(x)), away from the border
        x = torch.from_numpy(grid.world_grid(T_SHAPE, T_AFFINE)).float() + u_inv
        comp = u_inv + dfm._sample_field(u, dfm._world_to_normalized(x, T_SHAPE, T_AFFINE))
        res = comp.norm(dim=0) / SPACING
        assert res.max().item() < tol and res.mean().item() < 0.01, (res.max().item(), res.mean().item())
        det = dfm.jacobian_determinant(v, T_AFFINE)
        assert det.min().item() > 0.0


def test_zero_velocity_is_affine_resample(case):
    """With v = 0 the warps reduce to dlmi.spatial.resampling.resample through the affine (and its inverse)."""
    v0 = torch.zeros((3, *T_SHAPE))
    ours = dfm.warp_to_fixed(case["subject"], S_AFFINE, T_SHAPE, T_AFFINE, case["T"], v0)
    ref = resampling.resample(case["subject"], S_AFFINE, T_SHAPE, T_AFFINE, case["T"])
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    lab = dfm.propagate_to_moving(case["t_lab"], T_AFFINE, S_SHAPE, S_AFFINE, case["T"], v0)
    ref = resampling.resample(case["t_lab"], T_AFFINE, S_SHAPE, S_AFFINE, grid.invert(case["T"]), order=0)
    assert lab.dtype == case["t_lab"].dtype
    assert (lab != ref).mean() < 1e-3  # float32 vs float64 ties at voxel-face boundaries only


def test_registration_improves_intensity_error_and_dice(case, estimate):
    v, seconds = estimate
    v0 = torch.zeros_like(v)
    err = {}
    for name, field in (("affine", v0), ("svf", v)):
        warped = dfm.warp_to_fixed(case["subject"], S_AFFINE, T_SHAPE, T_AFFINE, case["T"], field)
        err[name] = float(np.sqrt(np.mean((warped - case["template"]) ** 2)))
    d = {}
    for name, field in (("affine", v0), ("svf", v)):
        lab = dfm.propagate_to_moving(case["t_lab"], T_AFFINE, S_SHAPE, S_AFFINE, case["T"], field)
        d[name] = metrics.label_dice(lab, case["s_lab"], (1, 2))
    print(f"svf_register {seconds:.1f} s; RMSE {err}; Dice {d}")
    # measured (CPU, 1 thread): RMSE 0.0206 -> 0.0062 (noise sigma 0.01; the true field gives 0.0095);
    # Dice hippocampus 0.665 -> 0.849, ventricles 0.628 -> 0.784 (true field: 0.866, 0.814, the ceiling
    # set by 3-mm voxels and nearest-neighbour labels)
    assert err["svf"] < 0.5 * err["affine"]
    assert d["affine"][1] < 0.72 and d["affine"][2] < 0.70
    assert d["svf"][1] > 0.82 and d["svf"][1] > d["affine"][1] + 0.12
    assert d["svf"][2] > 0.75 and d["svf"][2] > d["affine"][2] + 0.1


def _to_ants(array, affine):
    """ANTs image (LPS geometry) of an (X, Y, Z) array with its RAS+ affine."""
    import ants

    sp = grid.voxel_size(affine)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32), origin=lps[:3, 3].tolist(),
                           spacing=sp.tolist(), direction=lps[:3, :3] / sp)


def test_dice_against_ants_syn(case, estimate, tmp_path):
    """ANTs SyN (SyNOnly from the same initial affine) as the trusted peer: our propagated labels are no
    more than 0.05 Dice below its (measured: ANTs 0.811 / 0.790, ours 0.849 / 0.784, hippocampus /
    ventricles; ANTs about 2.5 s)."""
    ants = pytest.importorskip("ants")
    init = tmp_path / "init.mat"
    itk.write_transform(init, case["T"])
    fixed, moving = _to_ants(case["template"], T_AFFINE), _to_ants(case["subject"], S_AFFINE)
    out = ants.registration(fixed, moving, type_of_transform="SyNOnly", initial_transform=str(init),
                            reg_iterations=(40, 20, 10), verbose=False)
    # subject point y -> template: first the inverse of the affine, then SyN's inverse warp
    assert len(out["invtransforms"]) == 2
    lab = ants.apply_transforms(fixed=moving, moving=_to_ants(case["t_lab"], T_AFFINE),
                                transformlist=out["invtransforms"], whichtoinvert=[True, False],
                                interpolator="nearestNeighbor")
    d_ants = metrics.label_dice(np.rint(lab.numpy()).astype(np.int16), case["s_lab"], (1, 2))
    ours = dfm.propagate_to_moving(case["t_lab"], T_AFFINE, S_SHAPE, S_AFFINE, case["T"], estimate[0])
    d_ours = metrics.label_dice(ours, case["s_lab"], (1, 2))
    print(f"Dice ANTs {d_ants}, ours {d_ours}")
    for label in (1, 2):
        assert d_ants[label] > 0.75  # the peer did its job on this data
        assert d_ours[label] > d_ants[label] - 0.05


def test_save_load_roundtrip(tmp_path, estimate):
    v = estimate[0]
    path = tmp_path / "sub-001_velocity.nii.gz"
    dfm.save_velocity(path, v, T_AFFINE)
    import nibabel as nib

    assert nib.load(str(path)).shape == (*T_SHAPE, 3)
    v2, A = dfm.load_velocity(path)
    np.testing.assert_allclose(A, T_AFFINE)
    torch.testing.assert_close(v2, v.cpu())
