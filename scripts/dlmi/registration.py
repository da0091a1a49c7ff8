"""Image registration: resampling, affine and rigid registration, transform files, overlap scores.

Conventions (shared by every function here)

- A volume is an array of shape (X, Y, Z) in NIfTI voxel order; its `affine` is the 4x4 voxel-to-world
  matrix (RAS+, mm) that maps a voxel index (i, j, k, 1) to a world point (x, y, z, 1).
- A spatial transform is a 4x4 matrix `T` in world coordinates (RAS+, mm) that maps a point x of the
  FIXED image's space to the corresponding point T(x) of the MOVING image's space. This is the ITK/ANTs
  convention: resampling the moving image onto the fixed grid evaluates the moving image at T(x).
  Registration functions return such a matrix (numpy float64).
- Voxel values are sampled at voxel centres. A point counts as inside an image when its continuous voxel
  index lies within [-0.5, n - 0.5] on every axis (the voxels' physical extent, as in ITK); between the
  outermost centres and that limit, the edge value is used; outside it, `fill`.
- Kernels run in torch on the device of their inputs (or the `device` argument) and create tensors there;
  no data moves between CPU and GPU inside an optimisation loop. Transforms are small 4x4 numpy arrays.

ITK and ANTs use LPS world coordinates; `to_sitk_transform`, `from_sitk_transform`, `write_transform`
and `read_transform` convert (x_LPS = diag(-1, -1, 1) x_RAS), so files written here are read correctly by
SimpleITK, ITK and ANTs (`antsApplyTransforms`, `ants.read_transform`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------------------
# small matrix helpers


def as_matrix(matrix) -> np.ndarray:
    """A 4x4 matrix (numpy or torch, any device) as numpy float64, checked."""
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 homogeneous matrix, got shape {m.shape}")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"last row of a homogeneous matrix must be (0, 0, 0, 1), got {m[3]}")
    return m


def invert(matrix) -> np.ndarray:
    """Inverse of a 4x4 affine matrix (numpy float64): the transform moving -> fixed for T fixed -> moving."""
    return np.linalg.inv(as_matrix(matrix))


def transform_points(matrix, points) -> np.ndarray:
    """Map world points (N, 3) or (3,) (mm) through the 4x4 matrix; returns the same shape, float64."""
    m = as_matrix(matrix)
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def voxel_size(affine) -> np.ndarray:
    """Voxel spacing (3,) in mm: the lengths of the affine's first three columns."""
    return np.linalg.norm(as_matrix(affine)[:3, :3], axis=0)


def grid_corners(shape, affine) -> np.ndarray:
    """World coordinates (8, 3), mm, of the centres of the 8 corner voxels of a grid of `shape`."""
    idx = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                   dtype=np.float64)
    return transform_points(affine, idx)


def corner_error_mm(T_est, T_true, shape, affine) -> float:
    """Largest distance (mm) between T_est(c) and T_true(c) over the 8 corner voxel centres c of the fixed grid.

    shape: (X, Y, Z) of the fixed grid; affine: its voxel-to-world matrix. An upper bound of the
    displacement error over the whole grid for affine transforms (the error is affine, hence maximal at a corner).
    """
    c = grid_corners(shape, affine)
    return float(np.max(np.linalg.norm(transform_points(T_est, c) - transform_points(T_true, c), axis=1)))


# ----------------------------------------------------------------------------------------------------------
# resampling


def _voxel_map(moving_affine, fixed_affine, transform) -> np.ndarray:
    """Fixed voxel index -> moving voxel index: inv(A_moving) @ T @ A_fixed (float64)."""
    T = np.eye(4) if transform is None else as_matrix(transform)
    return np.linalg.inv(as_matrix(moving_affine)) @ T @ as_matrix(fixed_affine)


def resample(moving, moving_affine, fixed_shape, fixed_affine, transform=None, *, order: int = 1,
             fill: float = 0.0):
    """Resample `moving` onto the fixed grid: out[i] = moving(T(A_fixed @ i)).

    moving: (X, Y, Z) numpy array or torch tensor (any device); moving_affine, fixed_affine: 4x4 voxel-to-world
    (RAS+, mm); fixed_shape: (X', Y', Z') of the output grid; transform: 4x4 world matrix fixed -> moving
    (None = identity, i.e. both images already in the same world space).
    order: 1 trilinear (intensities) or 0 nearest neighbour (label maps; ties round up, as in ITK).
    fill: value of output voxels whose point falls outside the moving image (see module conventions).

    Returns an array of shape `fixed_shape` of the same kind as `moving`: a numpy array for numpy input, a
    torch tensor on moving's device for torch input. dtype: order 0 keeps moving's dtype; order 1 keeps a
    floating dtype and gives float32 for integer input. The computation is exact where T maps fixed voxel
    centres onto moving voxel centres (identity, integer shifts): no blurring.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), not {order!r}")
    as_numpy = not isinstance(moving, torch.Tensor)
    vol = torch.from_numpy(np.ascontiguousarray(moving)) if as_numpy else moving
    if vol.ndim != 3:
        raise ValueError(f"moving must be a 3-D volume (X, Y, Z), got shape {tuple(vol.shape)}")
    fixed_shape = tuple(int(s) for s in fixed_shape)
    if len(fixed_shape) != 3:
        raise ValueError(f"fixed_shape must have 3 entries, got {fixed_shape}")
    V = _voxel_map(moving_affine, fixed_affine, transform)
    work = vol.dtype if vol.dtype.is_floating_point else torch.float32
    out_dtype = vol.dtype if order == 0 else work
    cdtype = torch.float64 if work == torch.float64 else torch.float32
    dev = vol.device
    n = torch.tensor(vol.shape, device=dev, dtype=cdtype)
    Vt = torch.as_tensor(V, dtype=torch.float64).to(dev)
    lin, off = Vt[:3, :3].to(cdtype), Vt[:3, 3].to(cdtype)
    flat = vol.reshape(-1) if order == 0 else vol.reshape(-1).to(work)
    strides = (vol.shape[1] * vol.shape[2], vol.shape[2], 1)
    out = torch.empty(fixed_shape, dtype=out_dtype, device=dev)
    jy, jz = torch.meshgrid(torch.arange(fixed_shape[1], device=dev, dtype=cdtype),
                            torch.arange(fixed_shape[2], device=dev, dtype=cdtype), indexing="ij")
    plane = torch.stack([torch.zeros_like(jy), jy, jz], dim=-1).reshape(-1, 3)
    slab = max(1, (1 << 21) // max(1, plane.shape[0]))  # about 2M points per chunk bounds the memory
    fill_t = torch.tensor(fill, dtype=out_dtype, device=dev)
    for x0 in range(0, fixed_shape[0], slab):
        xs = torch.arange(x0, min(x0 + slab, fixed_shape[0]), device=dev, dtype=cdtype)
        pts = plane.unsqueeze(0).repeat(len(xs), 1, 1)
        pts[..., 0] = xs[:, None]
        c = pts.reshape(-1, 3) @ lin.T + off
        snapped = torch.round(c)
        c = torch.where((c - snapped).abs() < 1e-6, snapped, c)  # numerical noise of the affines: snap to centres
        inside = ((c >= -0.5) & (c <= n - 0.5)).all(dim=1)
        if order == 0:
            idx = torch.floor(c + 0.5).clamp(min=torch.zeros_like(n), max=n - 1).long()
            vals = flat[(idx * torch.tensor(strides, device=dev)).sum(1)]
        else:
            c = c.clamp(min=torch.zeros_like(n), max=n - 1)
            i0 = torch.minimum(torch.floor(c), (n - 2).clamp(min=0)).long()
            frac = (c - i0.to(cdtype)).to(work)
            i1 = torch.minimum(i0 + 1, (n - 1).long())
            vals = torch.zeros(c.shape[0], dtype=work, device=dev)
            for corner in range(8):
                bits = [(corner >> a) & 1 for a in range(3)]
                w = torch.ones_like(vals)
                lin_idx = torch.zeros(c.shape[0], dtype=torch.long, device=dev)
                for a in range(3):
                    w = w * (frac[:, a] if bits[a] else 1.0 - frac[:, a])
                    lin_idx = lin_idx + (i1[:, a] if bits[a] else i0[:, a]) * strides[a]
                vals = vals + w * flat[lin_idx]
        vals = torch.where(inside, vals.to(out_dtype), fill_t)
        out[x0:x0 + len(xs)] = vals.reshape(len(xs), fixed_shape[1], fixed_shape[2])
    return out.cpu().numpy() if as_numpy else out


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


def normalizer(shape, device):
    """4x4 map (float64) from voxel index (i, j, k) of a grid of `shape` to grid_sample's normalized
    coordinates in (Z, Y, X) order with align_corners=True (-1 and +1 are the edge voxel centres), and the
    normalized bounds (lo, hi) (3,) of the region counted as inside, voxel index in [-0.5, n - 0.5]."""
    N = torch.zeros(4, 4, dtype=torch.float64, device=device)
    lo, hi = torch.empty(3, device=device), torch.empty(3, device=device)
    for out_axis in range(3):
        axis = 2 - out_axis
        d = float(max(shape[axis] - 1, 1))
        N[out_axis, axis] = 2.0 / d
        N[out_axis, 3] = -1.0
        lo[out_axis] = 2.0 * -0.5 / d - 1.0
        hi[out_axis] = 2.0 * (shape[axis] - 0.5) / d - 1.0
    N[3, 3] = 1.0
    return N, lo, hi


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


# ----------------------------------------------------------------------------------------------------------
# ITK / SimpleITK / ANTs interoperability


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
