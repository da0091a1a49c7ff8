"""Resampling a volume onto another grid through a world transform (conventions: `dlmi.spatial.grid`), and
the map from voxel indices to the normalised coordinates of torch's `grid_sample`.

Outside the moving image (continuous voxel index beyond [-0.5, n - 0.5] on some axis) the output is `fill`;
between the outermost voxel centres and that limit, the edge value is used.
"""
from __future__ import annotations

import numpy as np
import torch

from dlmi.spatial.grid import as_matrix


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
