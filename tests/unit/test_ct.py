"""dlmi.recon.ct: projector adjointness, geometry against scikit-image, FBP against iradon, CT physics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from dlmi.recon import ct, projector

N = 128
DEGREES = np.linspace(0.0, 180.0, 180, endpoint=False)
RADIANS = torch.from_numpy(np.deg2rad(DEGREES))


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return resize(shepp_logan_phantom(), (N, N), anti_aliasing=True)


@pytest.fixture(scope="module")
def inscribed() -> np.ndarray:
    rows, cols = np.mgrid[:N, :N] - N // 2
    return rows**2 + cols**2 <= (N // 2) ** 2


def _mae(image, truth, mask) -> float:
    return float(np.abs(np.asarray(image) - truth)[mask].mean())


@pytest.mark.parametrize("n_det", [None, 24])  # default detector, and one that misses image corners
def test_back_project_is_exact_adjoint(n_det):
    gen = torch.Generator().manual_seed(0)
    angles = torch.rand(19, generator=gen, dtype=torch.float64) * 2 * math.pi
    x = torch.rand(3, 21, 26, generator=gen, dtype=torch.float64)
    ax = projector.forward_project(x, angles, pixel_mm=1.7, n_det=n_det)
    y = torch.rand(ax.shape, generator=gen, dtype=torch.float64)
    aty = projector.back_project(y, angles, (21, 26), pixel_mm=1.7)
    assert aty.shape == x.shape
    assert torch.allclose((ax * y).sum(), (x * aty).sum(), rtol=1e-6, atol=0)


def test_forward_project_shape_dtype_and_batch():
    x = torch.rand(2, 3, 30, 40)
    angles = np.linspace(0, np.pi, 12, endpoint=False)
    sino = projector.forward_project(x, angles)
    assert sino.shape == (2, 3, 12, projector.detector_size((30, 40))) == (2, 3, 12, 57)
    assert sino.dtype == torch.float32
    single = projector.forward_project(x[1, 2], angles)
    assert torch.allclose(sino[1, 2], single, rtol=1e-6, atol=1e-5)


def test_forward_project_conserves_mass_and_scales_with_pixel_size():
    x = torch.zeros(40, 40, dtype=torch.float64)
    x[10:30, 12:25] = 0.02
    angles = torch.linspace(0, math.pi, 37, dtype=torch.float64)
    sino = projector.forward_project(x, angles, pixel_mm=2.0)
    # integral over the detector (bin width 2 mm) = integral of mu over the slice (2 mm pixels)
    assert torch.allclose(sino.sum(-1) * 2.0, torch.full((37,), float(x.sum()) * 4.0, dtype=torch.float64))
    # the ray through the centre at angle 0 crosses 20 pixels of 2 mm: 0.02 * 40 = 0.8
    center = projector.detector_size((40, 40)) // 2
    assert sino[0, center] == pytest.approx(0.8)


def test_forward_project_matches_skimage_radon_geometry(phantom):
    ours = projector.forward_project(torch.from_numpy(phantom), RADIANS).numpy()
    reference = radon(phantom, DEGREES, circle=False).T  # (A, n_det), same centre and angle convention
    assert ours.shape == reference.shape
    rel = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    assert rel < 0.01


def test_fbp_of_uniform_disc_gives_its_attenuation():
    n, pixel = 96, 2.0
    rows, cols = np.mgrid[:n, :n] - n // 2
    disc = torch.from_numpy(((rows**2 + cols**2) < 35**2) * 0.02)
    angles = torch.linspace(0, math.pi, 181, dtype=torch.float64)[:-1]
    rec = ct.fbp(projector.forward_project(disc, angles, pixel_mm=pixel), angles, (n, n), pixel_mm=pixel)
    assert rec.shape == (n, n)
    assert float(rec[n // 2 - 15: n // 2 + 15, n // 2 - 15: n // 2 + 15].mean()) == pytest.approx(0.02, rel=0.005)
    assert float(rec[(rows**2 + cols**2) > 40**2].abs().mean()) < 0.0005


@pytest.mark.parametrize("circle", [True, False])
def test_fbp_no_worse_than_iradon_on_skimage_sinogram(phantom, inscribed, circle):
    sinogram = radon(phantom, DEGREES, circle=circle)
    peer = iradon(sinogram, DEGREES, filter_name="ramp", circle=circle, output_size=N)
    ours = ct.fbp(torch.from_numpy(sinogram.T.copy()), RADIANS, (N, N)).numpy()
    assert _mae(ours, phantom, inscribed) <= _mae(peer, phantom, inscribed)


def test_fbp_no_worse_than_iradon_on_own_sinogram(phantom, inscribed):
    sinogram = projector.forward_project(torch.from_numpy(phantom), RADIANS)
    peer = iradon(sinogram.numpy().T, DEGREES, filter_name="ramp", circle=False, output_size=N)
    ours = ct.fbp(sinogram, RADIANS, (N, N)).numpy()
    assert _mae(ours, phantom, inscribed) <= _mae(peer, phantom, inscribed)


def test_fbp_of_volume_slices_and_float32(phantom):
    volume = torch.from_numpy(np.stack([phantom, phantom[::-1]], axis=-1).copy()).float()  # (X, Y, Z)
    angles = RADIANS[::2]
    sino = projector.forward_project(volume.movedim(-1, 0), angles)  # z becomes the batch dim
    rec = ct.fbp(sino, angles, (N, N)).movedim(0, -1)
    assert rec.shape == volume.shape and rec.dtype == torch.float32
    single = ct.fbp(projector.forward_project(volume[..., 1], angles), angles, (N, N))
    assert torch.allclose(rec[..., 1], single, atol=1e-5)


@pytest.mark.parametrize("name", ["shepp-logan", "cosine", "hamming", "hann", None])
def test_ramp_filter_windows(name):
    response = ct.ramp_filter(256, name)
    assert response.shape == (256,)
    if name is None:
        assert torch.all(response == 1)
    else:
        assert abs(float(response[0])) < 1e-3 and float(response[64]) > 0
    with pytest.raises(ValueError):
        ct.ramp_filter(256, "butterworth")


def test_hu_mu_round_trip():
    hu = torch.tensor([-1000.0, 0.0, 40.0, 1000.0], dtype=torch.float64)
    mu = ct.hu_to_mu(hu)
    assert mu[0] == 0 and mu[1] == pytest.approx(ct.MU_WATER)
    assert torch.allclose(ct.mu_to_hu(mu), hu)
    assert ct.hu_to_mu(np.array([0.0]), mu_water=0.02)[0] == pytest.approx(0.02)


def test_hu_to_mu511_bilinear():
    hu = torch.tensor([-2000.0, -1000.0, -500.0, 0.0, 1e-9, 1000.0, 1500.0], dtype=torch.float64)
    mu = ct.hu_to_mu511(hu)
    expected = [0.0, 0.0, 0.0048, 0.0096, 0.0096, 0.0096 + 5.1e-3, 0.0096 + 7.65e-3]
    assert torch.allclose(mu, torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    assert np.allclose(ct.hu_to_mu511(hu.numpy()), expected, atol=1e-9)


def test_simulate_transmission_noise_and_reproducibility():
    p = torch.full((200, 100), 2.0, dtype=torch.float64)
    noisy = ct.simulate_transmission(p, 1e5, torch.Generator().manual_seed(3))
    again = ct.simulate_transmission(p, 1e5, torch.Generator().manual_seed(3))
    assert torch.equal(noisy, again)
    # delta method: var(p_hat) = 1 / (i0 exp(-p))
    assert float(noisy.mean()) == pytest.approx(2.0, abs=2e-3)
    assert float(noisy.std()) == pytest.approx(math.sqrt(1 / (1e5 * math.exp(-2.0))), rel=0.05)
    from_numpy_rng = ct.simulate_transmission(p, 1e5, np.random.default_rng(3))
    assert from_numpy_rng.dtype == torch.float64 and from_numpy_rng.shape == p.shape
    starved = ct.simulate_transmission(torch.full((10,), 50.0), 10.0, torch.Generator().manual_seed(0))
    assert torch.allclose(starved, torch.full((10,), -math.log(1 / 10.0)))  # zero counts clamp to one
