"""2-D PET per axial slice: attenuated forward model, Poisson counts and MLEM/OSEM reconstruction.

Each axial slice is an independent 2-D parallel-beam acquisition with the geometry of `dlmi.recon.ct` (a line of
response, LOR, is a (angle, detector bin) pair; bin spacing = pixel size; see `dlmi.recon.ct` for the centre and
angle conventions). A volume (X, Y, Z) in NIfTI voxel order is handled as the batch of slices
`volume.movedim(-1, 0)` (Z, X, Y); sinograms are then (Z, A, n_det).

Model of the expected counts per LOR:

    ybar = scale * a * integral(activity dl) + background,

with activity in kBq/mL, the line integral in kBq/mL * mm, a = exp(-integral(mu511 dl)) the survival
probability of the photon pair (`attenuation_factors`), and `scale` the counts per (kBq/mL * mm) of line
integral (it folds scan time, detector efficiency and the axial slab thickness; 1.0 by default).
`mlem` uses the same projector pair as `dlmi.recon.ct` (an exact adjoint pair), so MLEM keeps the total of the
expected counts equal to the total measured counts at every iteration (without background).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dlmi.recon.projector import Projector, check_float, forward_project, poisson, sinogram_to_columns

__all__ = [
    "attenuation_factors",
    "downsample",
    "downsampled_affine",
    "forward",
    "mlem",
    "simulate_counts",
    "upsample",
]


def attenuation_factors(mu511: torch.Tensor, angles, *, pixel_mm: float,
                        n_det: int | None = None) -> torch.Tensor:
    """Survival probability of a photon pair per LOR: exp(-line integral of mu at 511 keV).

    mu511: (..., H, W) linear attenuation at 511 keV (1/mm), e.g. from `dlmi.recon.ct.hu_to_mu511`; angles: (A,)
    radians; pixel_mm: pixel side (mm); n_det: detector bins (default ceil(sqrt(2) max(H, W))).
    Returns (..., A, n_det) factors in (0, 1], same device and dtype as `mu511`.
    """
    return torch.exp(-forward_project(mu511, angles, pixel_mm=pixel_mm, n_det=n_det))


def forward(activity: torch.Tensor, angles, attenuation: torch.Tensor, *, pixel_mm: float,
            scale: float = 1.0) -> torch.Tensor:
    """Expected counts per LOR (no background): scale * attenuation * forward_project(activity).

    activity: (..., H, W) in kBq/mL; angles: (A,) radians; attenuation: factors broadcastable to
    (..., A, n_det) (n_det is taken from its last dim); pixel_mm: pixel side (mm); scale: counts per
    (kBq/mL * mm) of line integral. Returns (..., A, n_det) expected counts, device and dtype of `activity`.
    """
    line = forward_project(activity, angles, pixel_mm=pixel_mm, n_det=attenuation.shape[-1])
    return scale * attenuation * line


def simulate_counts(expected: torch.Tensor, generator) -> torch.Tensor:
    """Poisson counts with mean `expected` (any shape; same device and dtype, integer-valued floats).

    generator: a torch.Generator on the device of `expected`, or a numpy Generator.
    """
    check_float(expected, "expected")
    return poisson(expected, generator)


def mlem(counts: torch.Tensor, angles, attenuation: torch.Tensor, shape: tuple[int, int], *,
         pixel_mm: float, n_iter: int, n_subsets: int = 1, background: torch.Tensor | None = None,
         scale: float = 1.0,
         callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """MLEM (n_subsets=1) or OSEM (n_subsets > 1) reconstruction with attenuation correction.

    counts: (..., A, n_det) measured counts per LOR (leading dims: a batch of slices); angles: (A,)
    radians; attenuation: survival factors broadcastable to counts (see `attenuation_factors`); shape:
    (H, W) of the image; pixel_mm: pixel side (mm); n_iter: full passes over the data; n_subsets: OSEM
    subsets of interleaved angles (subset m holds angles m, m + n_subsets, ...); background: expected
    randoms + scatter counts broadcastable to counts, or None; scale: counts per (kBq/mL * mm) as in
    `forward`; callback(iteration, image) is called after each pass (iteration from 1).

    Update per subset S: x <- x / (A_S^T 1) * A_S^T(y_S / (A_S x + b_S)), with A = scale * a * projector.
    Starts from the uniform image whose expected total counts match the measured total, on the support
    (pixels seen by some LOR with a > 0; others stay 0). Returns (..., H, W) activity in kBq/mL, device and
    dtype of `counts`. Without background and with one subset, sum(A x) == sum(y) holds at every iteration.
    """
    check_float(counts, "counts")
    if counts.ndim < 2:
        raise ValueError(f"counts must have shape (..., A, n_det), got {tuple(counts.shape)}")
    if int(n_iter) < 0 or int(n_subsets) < 1:
        raise ValueError(f"n_iter must be >= 0 and n_subsets >= 1, got {n_iter} and {n_subsets}")
    h, w = int(shape[0]), int(shape[1])
    n_ang, n_det = counts.shape[-2:]
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles.numel() != n_ang:
        raise ValueError(f"counts have {n_ang} angles but {angles.numel()} angles were given")
    if n_subsets > n_ang:
        raise ValueError(f"n_subsets ({n_subsets}) exceeds the number of angles ({n_ang})")
    device, dtype = counts.device, counts.dtype
    lead = counts.shape[:-2]

    # Everything below works on columns: images (n_pix, B), sinograms (A, n_det, B).
    y = sinogram_to_columns(counts)
    n_batch = y.shape[-1]

    def columns(sino):
        sino = torch.broadcast_to(torch.as_tensor(sino, device=device, dtype=dtype), counts.shape)
        return sinogram_to_columns(sino)

    weight = columns(attenuation) * (scale * pixel_mm)  # system weight per LOR (counts per unit projection)
    bg = None if background is None else columns(background)

    subsets = []
    for m in range(n_subsets):
        idx = torch.arange(m, n_ang, n_subsets)
        proj = Projector(angles[idx], (h, w), n_det, device=device, dtype=dtype, cache=True)
        idx = idx.to(device)
        w_m = weight.index_select(0, idx)
        sens = proj.back_columns(w_m)  # A_S^T 1, (n_pix, B)
        subsets.append((proj, y.index_select(0, idx), w_m, None if bg is None else bg.index_select(0, idx),
                        sens))

    sens_all = sum(s[-1] for s in subsets)
    tiny = torch.finfo(dtype).tiny
    support = sens_all > sens_all.amax(0, keepdim=True) * 1e-9
    total = y.reshape(-1, n_batch).sum(0)
    if bg is not None:
        total = (total - bg.reshape(-1, n_batch).sum(0)).clamp_min(0)
    level = total / (sens_all * support).sum(0).clamp_min(tiny)
    x = support * level  # (n_pix, B)

    for it in range(int(n_iter)):
        for proj, y_m, w_m, bg_m, sens in subsets:
            expected = w_m * proj.forward_columns(x)
            if bg_m is not None:
                expected = expected + bg_m
            ratio = torch.where(expected > 0, y_m / expected.clamp_min(tiny), 0.0)
            update = proj.back_columns(w_m * ratio)
            x = torch.where(sens > 0, x * update / sens.clamp_min(tiny), x)
        if callback is not None:
            callback(it + 1, x.transpose(0, 1).reshape(*lead, h, w))
    return x.transpose(0, 1).reshape(*lead, h, w)


def _factors(factor, ndim: int) -> tuple[int, ...]:
    factors = (int(factor),) * 3 if isinstance(factor, int) else tuple(int(f) for f in factor)
    if len(factors) > ndim or any(f < 1 for f in factors):
        raise ValueError(f"factor must be positive integers for the last {ndim} dims at most, got {factor}")
    return factors


def downsample(volume: torch.Tensor, factor: int | tuple[int, ...]) -> torch.Tensor:
    """Block-average the last dims by integer factors (e.g. a 2 mm anatomy grid to a 4 mm PET grid).

    volume: (..., X, Y, Z) of a concentration (kBq/mL, 1/mm); factor: int (same for the last three dims)
    or a tuple for the last len(factor) dims. Each output voxel is the mean of its f_x * f_y * f_z block, so
    the total (concentration x voxel volume) is preserved. The sizes must be divisible by the factors.
    For a voxel-to-world affine, output voxel (0, 0, 0) is centred at input voxel ((f - 1) / 2, ...).
    """
    factors = _factors(factor, volume.ndim)
    k = len(factors)
    sizes = volume.shape[-k:]
    if any(s % f for s, f in zip(sizes, factors)):
        raise ValueError(f"volume shape {tuple(sizes)} is not divisible by the factors {factors}")
    split = []
    for s, f in zip(sizes, factors):
        split += [s // f, f]
    blocks = volume.reshape(*volume.shape[:-k], *split)
    return blocks.mean(dim=tuple(range(volume.ndim - k + 1, volume.ndim + k, 2)))


def upsample(volume: torch.Tensor, factor: int | tuple[int, ...]) -> torch.Tensor:
    """Piecewise-constant upsampling of the last dims by integer factors (inverse grid of `downsample`).

    volume: (..., X, Y, Z); factor as in `downsample`. Every voxel is repeated f times along each axis, so
    concentrations and totals are preserved and downsample(upsample(v, f), f) == v.
    """
    factors = _factors(factor, volume.ndim)
    out = volume
    for axis, f in zip(range(volume.ndim - len(factors), volume.ndim), factors):
        out = out.repeat_interleave(f, dim=axis)
    return out


def downsampled_affine(affine, factor: int | tuple[int, int, int]) -> np.ndarray:
    """Voxel-to-world affine (4, 4) of the grid made by `downsample(volume, factor)` from a grid with `affine`.

    Voxel axes are scaled by the factors and the origin moves to the centre of the first block, input
    voxel ((f - 1) / 2, ...), so world positions (mm, RAS+) of the block centres are kept exactly.
    """
    factors = np.asarray(_factors(factor, 3), dtype=np.float64)
    if factors.size != 3:
        raise ValueError(f"factor must be an int or three ints, got {factor}")
    affine = np.asarray(affine, dtype=np.float64)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * factors[None, :]
    out[:3, 3] = affine[:3, :3] @ ((factors - 1) / 2) + affine[:3, 3]
    return out
