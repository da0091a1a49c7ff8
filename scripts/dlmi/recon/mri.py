"""MRI: spin-echo signal, multi-coil sensitivities, k-space simulation and coil-combined reconstruction.

Images are (X, Y, Z) in NIfTI voxel order (RAS+ affine); multi-coil data are (C, X, Y, Z). k-space is the
centred, orthonormal 3-D DFT over the last three dims (`fft_centered`): the k-space centre (DC) sits at
index (X // 2, Y // 2, Z // 2) and Parseval holds, so white noise of SD sigma per real/imaginary channel in
k-space is white noise of the same SD in each coil image.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "coil_combine",
    "coil_sensitivities",
    "fft_centered",
    "ifft_centered",
    "reconstruct_kspace",
    "root_sum_of_squares",
    "simulate_kspace",
    "spin_echo_signal",
]

_DIMS = (-3, -2, -1)


def spin_echo_signal(pd, t1_ms, t2_ms, *, tr_ms: float, te_ms: float):
    """Spin-echo signal PD (1 - exp(-TR / T1)) exp(-TE / T2) (90-degree excitation, TR >> TE).

    pd: proton density (arbitrary units), t1_ms, t2_ms: relaxation times (ms), all tensors of one shape
    (or broadcastable); tr_ms, te_ms: repetition and echo time (ms); T1-weighted: TR ~ 500, TE ~ 15.
    Voxels with T1 <= 0 are treated as fully relaxed (factor 1) and voxels with T2 <= 0 give no signal, so
    a background of PD = T1 = T2 = 0 is 0 (no division by zero). Returns a tensor like `pd`.
    """
    pd, t1, t2 = (torch.as_tensor(v) for v in (pd, t1_ms, t2_ms))
    one = torch.ones((), dtype=t1.dtype, device=t1.device)
    recovery = torch.where(t1 > 0, -torch.expm1(-tr_ms / torch.where(t1 > 0, t1, one)), one)
    decay = torch.where(t2 > 0, torch.exp(-te_ms / torch.where(t2 > 0, t2, one)), 0 * one)
    return pd * recovery * decay


def inversion_recovery_signal(pd, t1_ms, t2_ms, *, tr_ms: float, te_ms: float, ti_ms: float):
    """Magnitude inversion-recovery signal PD |1 - 2 exp(-TI / T1) + exp(-TR / T1)| exp(-TE / T2).

    The T1-weighted contrast used for volumetry (MPRAGE-like): with TR ~ 2000, TI ~ 900, TE ~ 4 ms, CSF is
    almost nulled and GM/WM separate well. Arguments and the handling of T1, T2 <= 0 as in
    `spin_echo_signal`. Returns a tensor like `pd`.
    """
    pd, t1, t2 = (torch.as_tensor(v) for v in (pd, t1_ms, t2_ms))
    one = torch.ones((), dtype=t1.dtype, device=t1.device)
    safe_t1 = torch.where(t1 > 0, t1, one)
    longitudinal = torch.where(t1 > 0, 1 - 2 * torch.exp(-ti_ms / safe_t1) + torch.exp(-tr_ms / safe_t1), one)
    decay = torch.where(t2 > 0, torch.exp(-te_ms / torch.where(t2 > 0, t2, one)), 0 * one)
    return pd * longitudinal.abs() * decay


def sequence_signal(pd, t1_ms, t2_ms, sequence: dict):
    """The image of a spin-echo or inversion-recovery sequence, whatever its weighting (the study's
    acquisition.mri, or a contrast family of `dlmi.sim.contrast`).

    sequence: {"sequence": "spin_echo" | "inversion_recovery", "tr_ms", "te_ms", and "ti_ms" for IR}.
    """
    if sequence["sequence"] == "spin_echo":
        return spin_echo_signal(pd, t1_ms, t2_ms, tr_ms=sequence["tr_ms"], te_ms=sequence["te_ms"])
    if sequence["sequence"] == "inversion_recovery":
        return inversion_recovery_signal(pd, t1_ms, t2_ms, tr_ms=sequence["tr_ms"], te_ms=sequence["te_ms"],
                                         ti_ms=sequence["ti_ms"])
    raise ValueError(f"acquisition.mri.sequence must be spin_echo or inversion_recovery, not {sequence['sequence']!r}")


def _complex_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.complex64
    if dtype.is_complex:
        return dtype
    return {torch.float64: torch.complex128}.get(dtype, torch.complex64)


def coil_sensitivities(shape: tuple[int, int, int], n_coils: int, *, voxel_mm=1.0, device=None,
                       dtype=torch.complex64, ring_radius_mm: float | None = None,
                       loop_radius_mm: float | None = None) -> torch.Tensor:
    """Smooth complex sensitivity maps of a birdcage-like receive array, normalised to sum |S_c|^2 = 1.

    shape: (X, Y, Z) voxels; n_coils: C coils equally spaced on a ring around the head in the axial (x-y)
    plane through the volume centre; voxel_mm: voxel size (mm), a float or (dx, dy, dz); dtype: complex
    dtype (a real dtype selects its complex counterpart); ring_radius_mm: ring radius (default 0.6 of the
    larger in-plane field of view, i.e. just outside the FOV); loop_radius_mm: coil loop radius (default
    half the ring radius).

    Coil c sits at angle phi_c = 2 pi c / C. Its raw magnitude is the on-axis field of a loop,
    (1 + (d / loop_radius)^2)^(-3/2), with d the distance (mm) from the coil centre; its phase is phi_c plus
    a gentle linear ramp (pi over the ring diameter along the coil's axis). Returns (C, X, Y, Z).
    """
    if n_coils < 1:
        raise ValueError(f"n_coils must be >= 1, got {n_coils}")
    cdtype = _complex_dtype(dtype)
    vox = (float(voxel_mm),) * 3 if np.isscalar(voxel_mm) else tuple(float(v) for v in voxel_mm)
    axes = [(torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2) * v for n, v in zip(shape, vox)]
    x, y, z = torch.meshgrid(*axes, indexing="ij")
    ring = ring_radius_mm or 0.6 * max(shape[0] * vox[0], shape[1] * vox[1])
    loop = loop_radius_mm or 0.5 * ring
    maps = []
    for c in range(n_coils):
        phi = 2 * math.pi * c / n_coils
        ux, uy = math.cos(phi), math.sin(phi)
        d2 = (x - ring * ux) ** 2 + (y - ring * uy) ** 2 + z**2
        magnitude = (1 + d2 / loop**2) ** -1.5
        phase = phi + (math.pi / (2 * ring)) * (x * ux + y * uy)
        maps.append(torch.polar(magnitude, phase))
    maps = torch.stack(maps)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))
    return maps.to(cdtype)


def fft_centered(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 3-D DFT over the last three dims: (..., X, Y, Z) -> complex k-space (..., X, Y, Z)."""
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fftn(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft_centered(kspace: torch.Tensor) -> torch.Tensor:
    """Inverse of `fft_centered`: complex k-space (..., X, Y, Z) -> complex image (..., X, Y, Z)."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifftn(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def _complex_normal(shape, generator, *, device, dtype) -> torch.Tensor:
    """Complex white noise with SD 1 in each of the real and imaginary channels."""
    rdtype = torch.float64 if dtype == torch.complex128 else torch.float32
    if isinstance(generator, np.random.Generator):
        draw = generator.standard_normal((2, *shape))
        parts = torch.as_tensor(draw, dtype=rdtype).to(device)
    elif isinstance(generator, torch.Generator):
        parts = torch.randn((2, *shape), generator=generator, device=device, dtype=rdtype)
    else:
        raise TypeError(f"generator must be a torch.Generator or numpy Generator, got {type(generator).__name__}")
    return torch.complex(parts[0], parts[1]).to(dtype)


def simulate_kspace(image: torch.Tensor, sensitivities: torch.Tensor, *, noise_sd: float = 0.0,
                    generator=None) -> torch.Tensor:
    """Multi-coil k-space of an image: fft_centered(S_c * image) + complex Gaussian noise.

    image: (X, Y, Z) real or complex (signal units); sensitivities: (C, X, Y, Z) complex; noise_sd: SD of
    the noise in each real and imaginary channel of every k-space sample (signal units; with the orthonormal
    FFT it is also the per-channel SD in each coil image); generator: torch.Generator on the data's device
    or numpy Generator (needed when noise_sd > 0). Returns (C, X, Y, Z) complex k-space on the device of
    `image`, complex64 for float32/complex64 inputs, complex128 when either input is double precision.
    """
    if image.shape != sensitivities.shape[1:]:
        raise ValueError(f"image {tuple(image.shape)} and sensitivities {tuple(sensitivities.shape)} differ")
    kspace = fft_centered(sensitivities * image)
    if noise_sd > 0:
        if generator is None:
            raise ValueError("simulate_kspace needs a generator when noise_sd > 0")
        kspace = kspace + noise_sd * _complex_normal(kspace.shape, generator, device=kspace.device,
                                                     dtype=kspace.dtype)
    return kspace


def coil_combine(coil_images: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Roemer / SENSE-1 combination with known maps: sum_c conj(S_c) I_c / sum_c |S_c|^2.

    coil_images, sensitivities: (C, X, Y, Z) complex. Returns the complex image (X, Y, Z); where the maps
    vanish (sum |S_c|^2 == 0) it is 0. With maps normalised to sum |S_c|^2 = 1 the noise SD per channel is
    unchanged.
    """
    weight = (sensitivities.abs() ** 2).sum(0)
    numerator = (sensitivities.conj() * coil_images).sum(0)
    return torch.where(weight > 0, numerator / torch.where(weight > 0, weight, 1), 0)


def reconstruct_kspace(kspace: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Coil-combined magnitude image |coil_combine(ifft_centered(kspace), sensitivities)|.

    kspace, sensitivities: (C, X, Y, Z) complex. Returns (X, Y, Z) real (the matching real dtype).
    """
    return coil_combine(ifft_centered(kspace), sensitivities).abs()


def root_sum_of_squares(coil_images: torch.Tensor) -> torch.Tensor:
    """Root-sum-of-squares combination sqrt(sum_c |I_c|^2) over dim 0: (C, ...) -> (...) real."""
    return torch.sqrt((coil_images.abs() ** 2).sum(0))
