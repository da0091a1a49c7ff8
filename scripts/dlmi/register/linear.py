"""Linear registration: rigid and affine, by normalised cross-correlation or mutual information, on a
multi-resolution pyramid.

Conventions (volumes, affines, transforms fixed -> moving, voxel centres): `dlmi.spatial.grid`.
Registration functions return a 4x4 world matrix (numpy float64). Kernels run in torch on the device of
their inputs (or the `device` argument) and create tensors there; no data moves between CPU and GPU inside
an optimisation loop.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dlmi.spatial.grid import as_matrix, transform_points, voxel_size
from dlmi.spatial.resampling import normalizer

# ----------------------------------------------------------------------------------------------------------
# pyramids and differentiable sampling used by the optimisers


def gaussian_smooth(vol: torch.Tensor, sigma_vox) -> torch.Tensor:
    """Separable Gaussian smoothing of (X, Y, Z); sigma per axis in voxels (0 skips the axis); edges replicated."""
    x = vol[None, None]
    for axis, s in enumerate(sigma_vox):
        if s <= 0.05:
            continue
        r = max(1, math.ceil(3.0 * s))
        t = torch.arange(-r, r + 1, device=vol.device, dtype=vol.dtype)
        k = torch.exp(-0.5 * (t / s) ** 2)
        k = k / k.sum()
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = 2 * r + 1
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r  # F.pad lists the last axis first
        x = F.conv3d(F.pad(x, pad, mode="replicate"), k.reshape(shape))
    return x[0, 0]


def pyramid_level(vol: torch.Tensor, affine: np.ndarray, sigma_mm: float, target_mm: float):
    """Smooth with a Gaussian of `sigma_mm` and subsample by the integer stride that brings the spacing
    closest to (not above) `target_mm`; returns (volume, affine of the subsampled grid)."""
    sp = voxel_size(affine)
    if sigma_mm > 0:
        vol = gaussian_smooth(vol, [sigma_mm / s for s in sp])
    stride = [max(1, math.floor(target_mm / s + 1e-6)) for s in sp]
    vol = vol[::stride[0], ::stride[1], ::stride[2]]
    return vol.contiguous(), affine @ np.diag([*stride, 1.0])


def _fixed_points(shape, device, samples: int | None, jitter: bool, seed: int = 0) -> torch.Tensor:
    """Sample positions (N, 3) float32, continuous voxel indices of a grid of `shape`: every voxel, or a
    reproducible random subset of `samples` of them; with `jitter`, each moved by a uniform random offset
    in [-0.5, 0.5) voxel per axis (clamped to the grid), so that the positions are not aligned with either
    image's grid (interpolation artefacts of the metric, as with ITK's random sampling)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    axes = [torch.arange(s, dtype=torch.float32) for s in shape]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    if samples is not None and pts.shape[0] > samples:
        pts = pts[torch.randperm(pts.shape[0], generator=gen)[:samples]]
    if jitter:
        pts = pts + torch.rand(pts.shape, generator=gen) - 0.5
        pts = torch.minimum(pts.clamp(min=0.0), torch.tensor(shape, dtype=torch.float32) - 1)
    return pts.to(device)



def _sample_points(vol: torch.Tensor, grid: torch.Tensor, lo: torch.Tensor | None, hi: torch.Tensor | None):
    """Trilinear values of vol (X, Y, Z) at normalized points grid (N, 3) (see `normalizer`), differentiable
    w.r.t. grid; returns (values (N,), inside mask (N,) bool, not differentiable; None when lo is None).
    Edge handling as in `resample` (edge value within half a voxel beyond the outermost centres)."""
    inside = None if lo is None else ((grid >= lo) & (grid <= hi)).all(dim=1)
    vals = F.grid_sample(vol[None, None], grid.reshape(1, 1, 1, -1, 3), mode="bilinear", padding_mode="border",
                         align_corners=True)
    return vals.reshape(-1), inside


# ----------------------------------------------------------------------------------------------------------
# metrics (to minimise)


def ncc_loss(f: torch.Tensor, f2: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Negative global normalized cross-correlation of fixed samples f (N,) (f2 = f * f) and moving samples
    m (N,). Float64: the loss is close to -1 at the optimum and the line search needs its small differences."""
    n = float(f.shape[0])
    sf, sff, sm = f.sum(), f2.sum(), m.sum()
    smm, sfm = torch.dot(m, m), torch.dot(m, f)
    cov = sfm - sf * sm / n
    var = (sff - sf * sf / n).clamp(min=0) * (smm - sm * sm / n).clamp(min=0)
    return -cov / torch.sqrt(var + 1e-30)


def _bspline3(u: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline kernel (support |u| < 2, partition of unity)."""
    a = u.abs()
    return torch.where(a < 1.0, (4.0 - 6.0 * a * a + 3.0 * a ** 3) / 6.0,
                       torch.where(a < 2.0, (2.0 - a).clamp(min=0) ** 3 / 6.0, torch.zeros_like(a)))


def _parzen_weights(v: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """Cubic B-spline Parzen window weights (N, bins) of intensities v mapped onto [2, bins - 3]."""
    pad = 2
    b = pad + (v.clamp(lo, hi) - lo) / max(hi - lo, 1e-12) * (bins - 2 * pad - 1)
    k = torch.arange(bins, device=v.device, dtype=v.dtype)
    return _bspline3(b[:, None] - k[None, :])


def _mi_loss(wf: torch.Tensor, m: torch.Tensor, m_range, bins: int) -> torch.Tensor:
    """Negative Mattes-style mutual information (nats) from fixed Parzen weights wf (N, bins) and moving
    samples m (N,): joint histogram wf^T @ wm, normalized, MI = sum p log p - sum pf log pf - sum pm log pm."""
    wm = _parzen_weights(m, m_range[0], m_range[1], bins)
    joint = (wf.T @ wm).to(torch.float64)
    joint = joint / joint.sum().clamp(min=1e-12)
    pf, pm = joint.sum(1), joint.sum(0)
    eps = 1e-12
    return -((joint * torch.log(joint + eps)).sum() - (pf * torch.log(pf + eps)).sum()
             - (pm * torch.log(pm + eps)).sum())


# ----------------------------------------------------------------------------------------------------------
# transform models (parameters in mm: translations in mm, linear parts scaled by a radius in mm, so that a
# unit step moves the points at that distance from the centre by about 1 mm)


def _affine_matrix(p: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """12 parameters -> 4x4: T(x) = (I + A)(x - c) + c + t, with A = p[3:].reshape(3, 3) / radius, t = p[:3]."""
    lin = torch.eye(3, dtype=p.dtype, device=p.device) + p[3:].reshape(3, 3) / radius
    return _homogeneous(lin, p[:3], centre)


def _rigid_matrix(p: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """6 parameters -> 4x4: T(x) = R(x - c) + c + t, R = exp(skew(p[3:] / radius)) (rotation vector, rad)."""
    r = p[3:] / radius
    zero = torch.zeros((), dtype=p.dtype, device=p.device)
    skew = torch.stack([torch.stack([zero, -r[2], r[1]]),
                        torch.stack([r[2], zero, -r[0]]),
                        torch.stack([-r[1], r[0], zero])])
    return _homogeneous(torch.linalg.matrix_exp(skew), p[:3], centre)


def _homogeneous(lin: torch.Tensor, t: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    top = torch.cat([lin, (centre - lin @ centre + t)[:, None]], dim=1)
    bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=lin.dtype, device=lin.device)
    return torch.cat([top, bottom], dim=0)


def _params_from_matrix(model: str, M: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Inverse of the parameterisations above (rigid: the rotation part of M is projected onto SO(3))."""
    lin = M[:3, :3]
    t = M[:3, 3] - centre + lin @ centre
    if model == "affine":
        return np.concatenate([t, ((lin - np.eye(3)) * radius).ravel()])
    u, _, vt = np.linalg.svd(lin)
    rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    t = M[:3, 3] - centre + rot @ centre
    angle = math.acos(max(-1.0, min(1.0, (np.trace(rot) - 1.0) / 2.0)))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-12:
        vec = np.zeros(3)
    elif math.pi - angle < 1e-6:
        w, v = np.linalg.eigh((rot + rot.T) / 2.0)
        vec = v[:, np.argmax(w)] * angle
    else:
        vec = axis / (2.0 * math.sin(angle)) * angle
    return np.concatenate([t, vec * radius])


# ----------------------------------------------------------------------------------------------------------
# registration


def _to_tensor(vol, device) -> torch.Tensor:
    t = vol if isinstance(vol, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(vol))
    if t.ndim != 3:
        raise ValueError(f"expected a 3-D volume (X, Y, Z), got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.float32)


def center_of_mass(volume, affine) -> np.ndarray:
    """Intensity centre of mass (3,), world mm, of a volume (X, Y, Z) (intensities shifted to a minimum of 0)."""
    v = volume if isinstance(volume, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(volume))
    v = v.to(torch.float64)
    v = v - v.min()
    total = v.sum()
    if float(total) <= 0:
        idx = (torch.tensor(v.shape, dtype=torch.float64) - 1) / 2
    else:
        idx = torch.stack([(v.sum(dim=tuple(b for b in range(3) if b != a))
                            * torch.arange(v.shape[a], dtype=torch.float64, device=v.device)).sum() / total
                           for a in range(3)]).cpu()
    return transform_points(affine, idx.numpy())


def _initial_transform(init, fixed, moving, fixed_affine, moving_affine) -> np.ndarray:
    """Start transform fixed -> moving: a 4x4 matrix as given, or a translation from an `init` keyword."""
    if init is not None and not isinstance(init, str):
        return as_matrix(init)
    T = np.eye(4)
    if init is None or init == "com":
        T[:3, 3] = center_of_mass(moving, moving_affine) - center_of_mass(fixed, fixed_affine)
    elif init in ("centre", "center"):
        T[:3, 3] = (transform_points(moving_affine, (np.array(moving.shape) - 1) / 2.0)
                    - transform_points(fixed_affine, (np.array(fixed.shape) - 1) / 2.0))
    elif init != "identity":
        raise ValueError(f"init must be None, 'com', 'centre', 'identity' or a 4x4 matrix, not {init!r}")
    return T


def check_pyramid_args(levels, iterations, metric, metrics, fixed, device) -> torch.device:
    """Validate the pyramid schedule and metric of a registration; return its device (default: fixed's)."""
    if len(levels) != len(iterations):
        raise ValueError(f"levels {levels} and iterations {iterations} must have the same length")
    if metric not in metrics:
        raise ValueError(f"metric must be one of {metrics}, not {metric!r}")
    if device is None:
        device = fixed.device if isinstance(fixed, torch.Tensor) else torch.device("cpu")
    return torch.device(device)


def _register(model, fixed, moving, fixed_affine, moving_affine, *, metric, levels, iterations, init, device,
              samples, bins):
    device = check_pyramid_args(levels, iterations, metric, ("ncc", "mi"), fixed, device)
    fixed_affine, moving_affine = as_matrix(fixed_affine), as_matrix(moving_affine)
    fix = _to_tensor(fixed, device)
    mov = _to_tensor(moving, device)
    T0 = _initial_transform(init, fix, mov, fixed_affine, moving_affine)

    centre = transform_points(fixed_affine, (np.array(fix.shape) - 1) / 2.0)
    extent = np.array(fix.shape) * voxel_size(fixed_affine)
    radius = float(np.sqrt((extent ** 2).sum() / 12.0))  # RMS distance of the grid's points from its centre
    build = _affine_matrix if model == "affine" else _rigid_matrix
    p = torch.tensor(_params_from_matrix(model, T0, centre, radius), dtype=torch.float64, device=device,
                     requires_grad=True)
    centre_t = torch.tensor(centre, dtype=torch.float64, device=device)
    base_mm = float(voxel_size(fixed_affine).min())

    for level, n_iter in zip(levels, iterations):
        if n_iter > 0:
            target = level * base_mm
            _optimise_level(p, lambda q: build(q, centre_t, radius), fix, mov, fixed_affine, moving_affine,
                            target_mm=target, sigma_mm=0.5 * target if level > 1 else 0.0, n_iter=n_iter,
                            metric=metric, samples=samples, bins=bins)
    with torch.no_grad():
        return build(p, centre_t, radius).cpu().numpy()


def _optimise_level(p, matrix_of, fix, mov, fixed_affine, moving_affine, *, target_mm, sigma_mm, n_iter,
                    metric, samples, bins) -> None:
    """One pyramid level: L-BFGS on the parameters p (in place); matrix_of(p) is the 4x4 world transform.

    Both images are smoothed by a Gaussian of sigma_mm; the fixed one is subsampled to target_mm and sampled
    at jittered points around its voxels; the moving one is subsampled only to target_mm / 2, so that its
    trilinear interpolation adds little blur."""
    device = fix.device
    f_lvl, Af = pyramid_level(fix, fixed_affine, sigma_mm, target_mm)
    m_lvl, Am = pyramid_level(mov, moving_affine, sigma_mm, 0.5 * target_mm)
    pts = _fixed_points(f_lvl.shape, device, samples, jitter=True)
    Nf = normalizer(f_lvl.shape, device)[0].to(torch.float32)
    f_vals, _ = _sample_points(f_lvl, torch.addmm(Nf[:3, 3], pts, Nf[:3, :3].T), lo=None, hi=None)
    Nm, lo, hi = normalizer(m_lvl.shape, device)
    faces = torch.cat([m_lvl[0].reshape(-1), m_lvl[-1].reshape(-1), m_lvl[:, 0].reshape(-1),
                       m_lvl[:, -1].reshape(-1), m_lvl[:, :, 0].reshape(-1), m_lvl[:, :, -1].reshape(-1)])
    background = faces.median()  # robust background value of the moving image (e.g. air)
    left = Nm @ torch.tensor(np.linalg.inv(Am), dtype=torch.float64, device=device)
    right = torch.tensor(Af, dtype=torch.float64, device=device)
    if metric == "ncc":
        f64 = f_vals.to(torch.float64)
        f2 = f64 * f64
    else:
        wf = _parzen_weights(f_vals, float(f_lvl.min()), float(f_lvl.max()), bins)
        m_range = (float(m_lvl.min()), float(m_lvl.max()))
    opt = torch.optim.LBFGS([p], lr=1.0, max_iter=n_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad(set_to_none=True)
        G = (left @ matrix_of(p) @ right).to(torch.float32)  # fixed level voxel -> normalized moving point
        m_vals, inside = _sample_points(m_lvl, torch.addmm(G[:3, 3], pts, G[:3, :3].T), lo, hi)
        m_vals = torch.where(inside, m_vals, background)  # outside the moving image: its background
        if metric == "ncc":
            loss = ncc_loss(f64, f2, m_vals.to(torch.float64))
        else:
            loss = _mi_loss(wf, m_vals, m_range, bins)
        loss.backward()
        return loss

    opt.step(closure)


def affine_register(fixed, moving, fixed_affine, moving_affine, *, metric: str = "ncc",
                    levels=(4, 2, 1), iterations=(100, 60, 30), init=None, device=None,
                    samples: int | None = 2 ** 18, bins: int = 32) -> np.ndarray:
    """12-parameter affine registration; returns the 4x4 world transform fixed -> moving (RAS+ mm, float64).

    fixed, moving: (X, Y, Z) volumes (numpy or torch), each with its own grid and 4x4 voxel-to-world affine.
    Model: T(x) = (I + A)(x - c) + c + t about the fixed grid's centre c (A: 3x3, t: mm), which covers
    translation, rotation, scaling and shear; the parameters are scaled to mm (A times the grid's RMS radius).
    Optimiser: L-BFGS with a strong-Wolfe line search on the metric's gradient (autograd through
    grid_sample), coarse to fine. `levels`: pyramid factors relative to the fixed grid's finest spacing s;
    at factor f both images are smoothed by a Gaussian of sigma f*s/2 mm (none at f = 1), the fixed image is
    subsampled to spacing f*s (its voxels are the sample points), the moving one to f*s/2.
    `iterations`: L-BFGS iterations per level (a level stops earlier when it has converged).
    samples: at most this many fixed sample points per level (a reproducible random subset; None = all),
    each jittered by a random sub-voxel offset so that no metric artefact favours grid-aligned transforms.
    Samples that map outside the moving image take its background value (median of its boundary voxels).
    metric: "ncc" (global normalized cross-correlation, same contrast) or "mi" (Mattes-style mutual
    information, `bins` cubic B-spline Parzen bins). init: None or "com" (align intensity centres of mass),
    "centre" (grid centres), "identity", or a 4x4 world matrix fixed -> moving. device: torch device for the
    computation (default: fixed's device; CPU for numpy input). Deterministic for a given device.
    """
    return _register("affine", fixed, moving, fixed_affine, moving_affine, metric=metric, levels=levels,
                     iterations=iterations, init=init, device=device, samples=samples, bins=bins)


def rigid_register(fixed, moving, fixed_affine, moving_affine, *, metric: str = "mi", levels=(4, 2, 1),
                   iterations=(100, 60, 30), init=None, device=None, samples: int | None = 50_000,
                   bins: int = 32) -> np.ndarray:
    """6-parameter rigid registration (rotation + translation); returns the 4x4 world transform fixed -> moving.

    Made for inter-modality alignment, e.g. a PET volume on a 4-mm grid as `moving` and a T1 on a 2-mm grid
    as `fixed`: the default metric "mi" is a differentiable Mattes-style mutual information (joint histogram
    of `bins` x `bins` bins with cubic B-spline Parzen windows on both intensities, each image's min..max
    range), estimated on `samples` fixed points per level. Model: T(x) = R(x - c) + c + t about the fixed
    grid's centre, R = exp of a rotation vector. Other arguments and the optimiser as in `affine_register`
    ("ncc" for same-contrast images).
    """
    return _register("rigid", fixed, moving, fixed_affine, moving_affine, metric=metric, levels=levels,
                     iterations=iterations, init=init, device=device, samples=samples, bins=bins)
