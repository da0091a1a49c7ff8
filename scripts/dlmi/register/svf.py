"""Nonlinear (deformable) registration on top of an affine: stationary velocity fields (SVF).

Conventions (those of `dlmi.spatial.grid`; the affine part comes from `dlmi.register.linear`)

- A volume is an (X, Y, Z) array with a 4x4 voxel-to-world affine (RAS+, mm).
- A transform maps FIXED points to MOVING points. In the workflow, fixed = template T1w (grid A_t),
  moving = subject T1w (grid A_s) and `affine` is the 4x4 world matrix template world -> subject world
  returned by `dlmi.register.linear.affine_register(template, subject, ...)`.
- The deformation is phi = exp(v), with v a stationary velocity field (3, X, Y, Z) in mm along the WORLD
  axes (RAS+), sampled at the voxel centres of the FIXED grid. phi(x) = x + u(x) with u the displacement
  of exp(v) (scaling and squaring). The full map fixed -> moving is x -> affine(x + u(x)); its inverse is
  y -> x0 + u_inv(x0), x0 = affine^-1(y), u_inv the displacement of exp(-v).
- Displacement fields are sampled outside their grid with the value at the nearest edge voxel (border).
- Kernels run in torch (float32) on the device of their inputs or the `device` argument.

Velocity files (`save_velocity`) are 4-D NIfTI (X, Y, Z, 3) float32 in mm, RAS+ world axes, on the fixed
grid: they are NOT ITK displacement fields (those are LPS and hold displacements, not velocities).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dlmi.register.linear import check_pyramid_args, gaussian_smooth, ncc_loss, pyramid_level
from dlmi.spatial.grid import as_matrix, voxel_size, world_grid
from dlmi.spatial.resampling import normalizer

__all__ = [
    "displacement",
    "jacobian_determinant",
    "load_velocity",
    "propagate_to_moving",
    "save_velocity",
    "svf_register",
    "warp_to_fixed",
]


# ----------------------------------------------------------------------------------------------------------
# field helpers


def _tensor(x, device=None, dtype=torch.float32) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def _check_velocity(velocity) -> torch.Tensor:
    v = _tensor(velocity)
    if v.ndim != 4 or v.shape[0] != 3:
        raise ValueError(f"velocity must have shape (3, X, Y, Z), got {tuple(v.shape)}")
    return v


def _world_grid_t(shape, affine, device) -> torch.Tensor:
    """`world_grid` as a float32 tensor on `device`."""
    return torch.from_numpy(world_grid(shape, affine)).to(device=device, dtype=torch.float32)


def _world_to_normalized(points: torch.Tensor, shape, affine) -> torch.Tensor:
    """World points (3, ...) mm -> grid_sample coordinates (..., 3) (Z, Y, X order, align_corners=True) of
    the grid (shape, affine)."""
    N, _, _ = normalizer(shape, points.device)
    M = (N @ torch.tensor(np.linalg.inv(as_matrix(affine)), dtype=torch.float64, device=points.device))
    M = M.to(points.dtype)
    return torch.einsum("ab,b...->...a", M[:3, :3], points) + M[:3, 3]


def _sample_field(field: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear values of field (C, X, Y, Z) at normalized points grid (X', Y', Z', 3), border padding;
    returns (C, X', Y', Z'); differentiable w.r.t. field and grid."""
    out = F.grid_sample(field[None], grid[None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[0]


def _exp_field(v: torch.Tensor, affine, steps: int) -> torch.Tensor:
    """Displacement (3, X, Y, Z) mm of exp(v) for v (3, X, Y, Z) mm on the grid (shape, affine) by scaling
    and squaring: u <- v / 2^steps, then `steps` times u <- u + u o (id + u). Differentiable."""
    shape = tuple(v.shape[1:])
    lin = torch.tensor(np.linalg.inv(as_matrix(affine))[:3, :3], dtype=v.dtype, device=v.device)
    N, _, _ = normalizer(shape, v.device)
    Nl = N[:3, :3].to(v.dtype)
    base = _world_to_normalized(_world_grid_t(shape, affine, v.device).to(v.dtype), shape, affine)
    to_norm = Nl @ lin  # world displacement (mm) -> normalized displacement
    u = v / (2.0 ** steps)
    for _ in range(steps):
        grid = base + torch.einsum("ab,bxyz->xyza", to_norm, u)
        u = u + _sample_field(u, grid)
    return u


def _smooth_field(v: torch.Tensor, sigma_vox) -> torch.Tensor:
    """Gaussian smoothing of every channel of v (C, X, Y, Z); sigma per axis in voxels; edges replicated."""
    return torch.stack([gaussian_smooth(channel, sigma_vox) for channel in v])


def _resample_field(field: torch.Tensor, src_affine, dst_shape, dst_affine) -> torch.Tensor:
    """Field (C, X, Y, Z) on grid src_affine sampled (trilinear, border) at the voxel centres of the grid
    (dst_shape, dst_affine); the values (mm vectors in world axes) are unchanged."""
    pts = _world_grid_t(dst_shape, dst_affine, field.device)
    return _sample_field(field, _world_to_normalized(pts, field.shape[1:], src_affine))


def _diffusion(v: torch.Tensor, spacing) -> torch.Tensor:
    """Mean over voxels of sum_ij (dv_i/dx_j)^2 (forward differences in mm; dimensionless)."""
    total = v.new_zeros(())
    for axis in range(3):
        d = torch.diff(v, dim=axis + 1) / float(spacing[axis])
        total = total + (d * d).sum(0).mean()
    return total


def _lncc_loss(f: torch.Tensor, m: torch.Tensor, radius: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Negative mean local (windowed) squared-free NCC of volumes f, m (X, Y, Z) over cubic windows of
    (2 radius + 1)^3 voxels, as in ANTs' CC metric (correlation, not squared)."""
    k = 2 * radius + 1
    stack = torch.stack([f, m, f * f, m * m, f * m])[None]  # (1, 5, X, Y, Z)
    mean = F.avg_pool3d(F.pad(stack, [radius] * 6, mode="replicate"), k, stride=1)[0]
    mf, mm, mff, mmm, mfm = mean
    cov = mfm - mf * mm
    var = (mff - mf * mf).clamp(min=0) * (mmm - mm * mm).clamp(min=0)
    cc = cov / torch.sqrt(var + 1e-8)
    if mask is not None:
        return -(cc * mask).sum() / mask.sum().clamp(min=1)
    return -cc.mean()


# ----------------------------------------------------------------------------------------------------------
# registration


def svf_register(fixed, moving, fixed_affine, moving_affine, affine=None, *, levels=(4, 2), iterations=(60, 40),
                 grid_mm: float = 4.0, smoothing_mm: float = 4.0, regularization: float = 0.01,
                 metric: str = "ncc", window: int = 2, steps: int = 6, device=None) -> torch.Tensor:
    """Diffeomorphic registration by a stationary velocity field, on top of an affine.

    fixed, moving: (X, Y, Z) volumes (numpy or torch) of the same contrast, each with its 4x4 voxel-to-world
    affine (RAS+, mm). affine: 4x4 world matrix fixed -> moving (e.g. from `affine_register`; None =
    identity), kept fixed. Returns the velocity v, a float32 tensor (3, X, Y, Z) in mm along the world axes on
    the FIXED grid (on `device`): the full map fixed -> moving is x -> affine(x + u(x)), u the displacement
    of phi = exp(v) (see `displacement`).

    Optimisation: coarse to fine over `levels` (factors of the fixed grid's finest spacing s; at factor f
    both images are Gaussian-smoothed with sigma f*s/2 mm (none at f = 1), the fixed one subsampled to
    spacing f*s, the moving one to f*s/2), `iterations` L-BFGS iterations per level (strong-Wolfe line search,
    autograd through grid_sample). Parameters: a control grid of spacing max(grid_mm, f*s) mm spanning the
    level's grid; v = Gaussian(sigma smoothing_mm) * trilinear upsampling of it, so v stays smooth.
    Loss: -NCC(fixed, moving o map) + regularization * mean |grad v|^2 (diffusion energy, dimensionless),
    NCC global ("ncc") or windowed with (2*window+1)^3-voxel windows ("lncc", ANTs' CC). exp(v) uses
    `steps` squarings during the optimisation. Points mapped outside the moving image take its background
    value (median of its boundary voxels). Deterministic on a given device.
    """
    device = check_pyramid_args(levels, iterations, metric, ("ncc", "lncc"), fixed, device)
    fixed_affine, moving_affine = as_matrix(fixed_affine), as_matrix(moving_affine)
    T = np.eye(4) if affine is None else as_matrix(affine)
    fix = _tensor(fixed, device)
    mov = _tensor(moving, device)
    if fix.ndim != 3 or mov.ndim != 3:
        raise ValueError(f"fixed and moving must be 3-D volumes, got {tuple(fix.shape)} and {tuple(mov.shape)}")
    base_mm = float(voxel_size(fixed_affine).min())

    v_prev, A_prev = None, None
    for level, n_iter in zip(levels, iterations):
        target = level * base_mm
        sigma = 0.5 * target if level > 1 else 0.0
        f_lvl, Af = pyramid_level(fix, fixed_affine, sigma, target)
        m_lvl, Am = pyramid_level(mov, moving_affine, sigma, 0.5 * target)
        shape = tuple(f_lvl.shape)
        sp = voxel_size(Af)
        # control grid spanning the level grid's corner voxel centres (trilinear, align_corners=True)
        nc = [max(2, math.ceil((n - 1) * s / max(grid_mm, s) - 1e-6) + 1) for n, s in zip(shape, sp)]
        Ac = Af @ np.diag([(n - 1) / (c - 1) for n, c in zip(shape, nc)] + [1.0])
        if v_prev is None:
            p0 = torch.zeros((3, *nc), device=device)
        else:
            p0 = _resample_field(v_prev, A_prev, nc, Ac)
        p = p0.clone().requires_grad_(True)
        sigma_vox = [smoothing_mm / s for s in sp]

        def velocity_of(q):
            up = F.interpolate(q[None], size=shape, mode="trilinear", align_corners=True)[0]
            return _smooth_field(up, sigma_vox)

        if n_iter > 0:
            x_world = _world_grid_t(shape, Af, device)
            G = (torch.tensor(normalizer(m_lvl.shape, device)[0].cpu().numpy() @ np.linalg.inv(Am) @ T,
                              dtype=torch.float32, device=device))
            _, lo, hi = normalizer(m_lvl.shape, device)
            faces = torch.cat([m_lvl[0].reshape(-1), m_lvl[-1].reshape(-1), m_lvl[:, 0].reshape(-1),
                               m_lvl[:, -1].reshape(-1), m_lvl[:, :, 0].reshape(-1), m_lvl[:, :, -1].reshape(-1)])
            background = faces.median()
            f64 = f_lvl.reshape(-1).to(torch.float64)
            f2 = f64 * f64
            opt = torch.optim.LBFGS([p], lr=1.0, max_iter=n_iter, history_size=10, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure():
                opt.zero_grad(set_to_none=True)
                v = velocity_of(p)
                u = _exp_field(v, Af, steps)
                pts = x_world + u
                grid = torch.einsum("ab,bxyz->xyza", G[:3, :3], pts) + G[:3, 3]
                m = _sample_field(m_lvl[None], grid)[0]
                inside = ((grid >= lo.to(grid.dtype)) & (grid <= hi.to(grid.dtype))).all(dim=-1)
                m = torch.where(inside, m, background)
                if metric == "ncc":
                    sim = ncc_loss(f64, f2, m.reshape(-1).to(torch.float64))
                else:
                    sim = _lncc_loss(f_lvl.to(torch.float64), m.to(torch.float64), window)
                loss = sim + regularization * _diffusion(v, sp).to(torch.float64)
                loss.backward()
                return loss

            opt.step(closure)
        with torch.no_grad():
            v_prev, A_prev = velocity_of(p), Af
    with torch.no_grad():
        return _resample_field(v_prev, A_prev, tuple(fix.shape), fixed_affine).contiguous()


# ----------------------------------------------------------------------------------------------------------
# using the field


def displacement(velocity, fixed_affine, *, inverse: bool = False, steps: int = 7) -> torch.Tensor:
    """Displacement u (3, X, Y, Z), mm along the world axes, of exp(v) (exp(-v) with `inverse`) on the
    fixed grid: phi(x) = x + u(x). velocity: (3, X, Y, Z) mm (numpy or torch; the result is a float32
    tensor on its device); fixed_affine: the grid's 4x4 voxel-to-world matrix. Scaling and squaring with
    `steps` squarings (trilinear interpolation, border values outside the grid)."""
    v = _check_velocity(velocity)
    with torch.no_grad():
        return _exp_field(-v if inverse else v, as_matrix(fixed_affine), steps)


def _sample_world(image, affine, points: torch.Tensor, order: int, fill: float) -> torch.Tensor:
    """Values of image (X, Y, Z) (torch) at world points (3, ...) mm, as `dlmi.spatial.resampling.resample`:
    inside when the continuous index lies in [-0.5, n - 0.5] on every axis (edge value between the edge
    centre and that limit), `fill` outside; order 0 nearest (keeps the dtype), 1 trilinear (float)."""
    shape = tuple(image.shape)
    Ainv = torch.tensor(np.linalg.inv(as_matrix(affine)), dtype=torch.float64, device=points.device)
    c = torch.einsum("ab,b...->...a", Ainv[:3, :3], points.to(torch.float64)) + Ainv[:3, 3]
    n = torch.tensor(shape, dtype=torch.float64, device=points.device)
    inside = ((c >= -0.5) & (c <= n - 0.5)).all(dim=-1)
    if order == 0:
        idx = torch.floor(c + 0.5).clamp(min=torch.zeros_like(n), max=n - 1).long()
        vals = image[idx[..., 0], idx[..., 1], idx[..., 2]]
    else:
        work = image.dtype if image.dtype.is_floating_point else torch.float32
        N, _, _ = normalizer(shape, points.device)
        g = (c @ N[:3, :3].T + N[:3, 3]).to(torch.float32)
        vals = _sample_field(image.to(work)[None], g)[0]
    return torch.where(inside, vals, torch.tensor(fill, dtype=vals.dtype, device=vals.device))


def warp_to_fixed(moving, moving_affine, fixed_shape, fixed_affine, affine, velocity, *, order: int = 1,
                  fill: float = 0.0, steps: int = 7):
    """The moving image on the fixed grid through the full map: out(x) = moving(affine(x + u(x))).

    moving: (X, Y, Z) numpy or torch (e.g. the subject T1w); fixed_shape, fixed_affine: the fixed grid
    (template); affine: 4x4 world fixed -> moving (None = identity); velocity: (3, *fixed_shape) mm from
    `svf_register`. order: 1 trilinear, 0 nearest (labels). Outside the moving image: `fill`. Returns numpy
    for numpy input (float32 for order 1, moving's dtype for order 0), else a tensor on moving's device.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), not {order!r}")
    as_numpy = not isinstance(moving, torch.Tensor)
    img = torch.from_numpy(np.ascontiguousarray(moving)) if as_numpy else moving
    v = _check_velocity(velocity).to(img.device)
    fixed_shape = tuple(int(s) for s in fixed_shape)
    if tuple(v.shape[1:]) != fixed_shape:
        raise ValueError(f"velocity grid {tuple(v.shape[1:])} differs from fixed_shape {fixed_shape}")
    T = torch.tensor(np.eye(4) if affine is None else as_matrix(affine), dtype=torch.float32, device=img.device)
    with torch.no_grad():
        u = _exp_field(v, as_matrix(fixed_affine), steps)
        x = _world_grid_t(fixed_shape, fixed_affine, img.device) + u
        y = torch.einsum("ab,bxyz->axyz", T[:3, :3], x) + T[:3, 3, None, None, None]
        out = _sample_world(img, moving_affine, y, order, fill)
    return out.cpu().numpy() if as_numpy else out


def propagate_to_moving(template_image, template_affine, moving_shape, moving_affine, affine, velocity, *,
                        order: int = 0, fill: float = 0.0, steps: int = 7):
    """A fixed-space (template) image brought into moving (subject) space through the inverse map.

    For each moving voxel centre y: x0 = affine^-1(y) (template world), x = x0 + u_inv(x0) with u_inv the
    displacement of exp(-v) (trilinear at x0), and out(y) = template_image(x). template_image: (X, Y, Z) on
    the fixed grid (template_affine; velocity (3, X, Y, Z) mm lives on the same grid); moving_shape,
    moving_affine: the subject grid; affine: 4x4 world fixed -> moving as given to `svf_register`.
    order 0 nearest (label maps; dtype kept), 1 trilinear. Outside the template: `fill`. numpy in, numpy out.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), not {order!r}")
    as_numpy = not isinstance(template_image, torch.Tensor)
    img = torch.from_numpy(np.ascontiguousarray(template_image)) if as_numpy else template_image
    v = _check_velocity(velocity).to(img.device)
    if tuple(v.shape[1:]) != tuple(img.shape):
        raise ValueError(f"velocity grid {tuple(v.shape[1:])} differs from the template's {tuple(img.shape)}")
    moving_shape = tuple(int(s) for s in moving_shape)
    Tinv = torch.tensor(np.linalg.inv(np.eye(4) if affine is None else as_matrix(affine)), dtype=torch.float32,
                        device=img.device)
    with torch.no_grad():
        u_inv = _exp_field(-v, as_matrix(template_affine), steps)
        y = _world_grid_t(moving_shape, moving_affine, img.device)
        x0 = torch.einsum("ab,bxyz->axyz", Tinv[:3, :3], y) + Tinv[:3, 3, None, None, None]
        x = x0 + _sample_field(u_inv, _world_to_normalized(x0, tuple(img.shape), template_affine))
        out = _sample_world(img, template_affine, x, order, fill)
    return out.cpu().numpy() if as_numpy else out


def jacobian_determinant(velocity, fixed_affine, *, steps: int = 7) -> torch.Tensor:
    """det(d phi / dx) (X, Y, Z) of phi = exp(v) on the fixed grid (central differences, one-sided at the
    edges, in world mm); > 0 everywhere for a diffeomorphism, < 1 where phi contracts."""
    v = _check_velocity(velocity)
    A = as_matrix(fixed_affine)
    u = displacement(v, A, steps=steps)
    du_di = torch.stack(torch.gradient(u, dim=(1, 2, 3)), dim=1)  # (3 comp, 3 voxel axes, X, Y, Z)
    Linv = torch.tensor(np.linalg.inv(A[:3, :3]), dtype=u.dtype, device=u.device)
    J = torch.einsum("cixyz,ij->xyzcj", du_di, Linv) + torch.eye(3, dtype=u.dtype, device=u.device)
    return torch.linalg.det(J)


# ----------------------------------------------------------------------------------------------------------
# files


def save_velocity(path, velocity, fixed_affine) -> None:
    """Write v (3, X, Y, Z) mm as a 4-D NIfTI (X, Y, Z, 3) float32 with the fixed grid's affine, atomically."""
    from dlmi.io import save_nifti

    v = _check_velocity(velocity).detach().cpu().numpy()
    save_nifti(path, np.moveaxis(v, 0, -1), as_matrix(fixed_affine), dtype=np.float32)


def load_velocity(path) -> tuple[torch.Tensor, np.ndarray]:
    """Read a velocity file of `save_velocity`: (v (3, X, Y, Z) float32 tensor on the CPU, affine (4, 4))."""
    from dlmi.io import InputError, load_nifti

    data, A = load_nifti(path, ndim=4)
    if data.shape[-1] != 3:
        raise InputError(f"{path}: a velocity field has 3 components on its last axis, got shape {data.shape}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, -1, 0))), A
