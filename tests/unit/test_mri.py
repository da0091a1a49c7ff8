"""dlmi.recon.mri: signal equation, coil maps, centred FFT, coil combination and noise level."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlmi.recon import mri

SHAPE = (24, 20, 16)


def test_spin_echo_signal_hand_values():
    pd = torch.tensor([1.0, 0.8, 0.0], dtype=torch.float64)
    t1 = torch.tensor([1000.0, 500.0, 0.0], dtype=torch.float64)
    t2 = torch.tensor([100.0, 50.0, 0.0], dtype=torch.float64)
    signal = mri.spin_echo_signal(pd, t1, t2, tr_ms=500.0, te_ms=15.0)
    expected = [
        1.0 * (1 - math.exp(-0.5)) * math.exp(-0.15),  # 0.39347 * 0.86071 = 0.33866
        0.8 * (1 - math.exp(-1.0)) * math.exp(-0.3),  # 0.8 * 0.63212 * 0.74082 = 0.37463
        0.0,  # background: no NaN
    ]
    assert torch.allclose(signal, torch.tensor(expected, dtype=torch.float64), rtol=1e-12)
    assert signal[0].item() == pytest.approx(0.33866, abs=1e-5)
    assert mri.spin_echo_signal(1.0, 1e9, 1e9, tr_ms=500.0, te_ms=15.0).item() == pytest.approx(5e-7, rel=1e-3)


def test_coil_sensitivities_are_normalised_and_smooth():
    maps = mri.coil_sensitivities(SHAPE, 8, voxel_mm=(2.0, 2.0, 3.0))
    assert maps.shape == (8, *SHAPE) and maps.dtype == torch.complex64
    assert torch.allclose((maps.abs() ** 2).sum(0), torch.ones(SHAPE), atol=1e-5)
    # coil 0 sits at +x: it sees the +x edge more than the -x edge
    assert float(maps[0, -1].abs().mean()) > 2 * float(maps[0, 0].abs().mean())
    # smooth: neighbouring voxels differ little
    assert float((maps[:, 1:] - maps[:, :-1]).abs().max()) < 0.2
    assert mri.coil_sensitivities(SHAPE, 4, dtype=torch.float64).dtype == torch.complex128


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_fft_round_trip(dtype, tol):
    image = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=dtype)
    back = mri.ifft_centered(mri.fft_centered(image))
    assert float((back - image).abs().max() / image.abs().max()) < tol
    kspace = mri.fft_centered(torch.ones(SHAPE, dtype=dtype))
    centre = tuple(n // 2 for n in SHAPE)
    assert float(kspace[centre].real) == pytest.approx(math.sqrt(np.prod(SHAPE)), rel=1e-6)
    assert float(kspace.abs().sum() - kspace[centre].abs()) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coil_combination_is_exact_without_noise(dtype):
    image = torch.rand(SHAPE, generator=torch.Generator().manual_seed(1), dtype=dtype)
    maps = mri.coil_sensitivities(SHAPE, 6, voxel_mm=2.0, dtype=dtype)
    kspace = mri.simulate_kspace(image, maps)
    assert kspace.shape == (6, *SHAPE) and kspace.is_complex()
    recon = mri.reconstruct_kspace(kspace, maps)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert recon.dtype == dtype
    assert float((recon - image).abs().max()) < tol
    assert torch.allclose(mri.root_sum_of_squares(mri.ifft_centered(kspace)), image, atol=10 * tol)


def test_noise_level_in_image_domain():
    sd = 0.05
    image = torch.ones(32, 32, 32)
    maps = mri.coil_sensitivities((32, 32, 32), 8, voxel_mm=2.0)
    kspace = mri.simulate_kspace(image, maps, noise_sd=sd, generator=torch.Generator().manual_seed(2))
    combined = mri.coil_combine(mri.ifft_centered(kspace), maps)
    noise = combined - image
    assert float(noise.real.std()) == pytest.approx(sd, rel=0.05)
    assert float(noise.imag.std()) == pytest.approx(sd, rel=0.05)
    magnitude = mri.reconstruct_kspace(kspace, maps)  # high SNR: magnitude noise ~ Gaussian, SD sd
    assert float(magnitude.std()) == pytest.approx(sd, rel=0.05)


def test_noise_is_reproducible_and_needs_a_generator():
    image = torch.ones(SHAPE)
    maps = mri.coil_sensitivities(SHAPE, 2)
    a = mri.simulate_kspace(image, maps, noise_sd=0.1, generator=np.random.default_rng(5))
    b = mri.simulate_kspace(image, maps, noise_sd=0.1, generator=np.random.default_rng(5))
    assert torch.equal(a, b) and a.dtype == torch.complex64
    with pytest.raises(ValueError):
        mri.simulate_kspace(image, maps, noise_sd=0.1)


def test_inversion_recovery_signal_hand_values_and_null_point():
    pd = torch.tensor([1.0, 0.8], dtype=torch.float64)
    t1 = torch.tensor([4200.0, 1820.0], dtype=torch.float64)
    t2 = torch.tensor([2000.0, 99.0], dtype=torch.float64)
    signal = mri.inversion_recovery_signal(pd, t1, t2, tr_ms=2000.0, te_ms=4.0, ti_ms=900.0)
    expected = [abs(1 - 2 * math.exp(-900 / T1) + math.exp(-2000 / T1)) * p * math.exp(-4 / T2)
                for p, T1, T2 in ((1.0, 4200.0, 2000.0), (0.8, 1820.0, 99.0))]
    torch.testing.assert_close(signal, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    # with TR >> T1 the longitudinal magnetisation crosses zero at TI = T1 ln 2
    null = mri.inversion_recovery_signal(1.0, 1000.0, 1e9, tr_ms=1e7, te_ms=0.0, ti_ms=1000.0 * math.log(2))
    assert abs(null.item()) < 1e-12


def test_sequence_signal_dispatches_on_the_sequence():
    args = (torch.tensor(0.8), torch.tensor(1820.0), torch.tensor(99.0))
    se = mri.sequence_signal(*args, {"sequence": "spin_echo", "tr_ms": 500.0, "te_ms": 15.0})
    assert se == mri.spin_echo_signal(*args, tr_ms=500.0, te_ms=15.0)
    with pytest.raises(ValueError, match=r"acquisition\.mri\.sequence"):
        mri.sequence_signal(*args, {"sequence": "flash", "tr_ms": 1.0, "te_ms": 1.0})
