"""dlmi.recon.pet: attenuation, forward model, MLEM/OSEM properties, grid changes."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dlmi.recon import pet, projector

N = 40
PIXEL = 4.0
ANGLES = torch.linspace(0, math.pi, 61, dtype=torch.float64)[:-1]


@pytest.fixture(scope="module")
def phantom():
    rows, cols = torch.meshgrid(torch.arange(N) - N // 2, torch.arange(N) - N // 2, indexing="ij")
    head = ((rows**2 + cols**2) < 16**2).double()
    hot = ((rows - 5) ** 2 + (cols + 4) ** 2 < 4**2).double()
    activity = 5.0 * head + 15.0 * hot  # kBq/mL
    mu511 = 0.0096 * head  # 1/mm
    return activity, mu511, pet.attenuation_factors(mu511, ANGLES, pixel_mm=PIXEL)


def _error(x, truth):
    return float((x - truth).abs().mean())


def test_attenuation_factors_of_a_water_disc(phantom):
    att = phantom[2]
    assert att.shape == (60, projector.detector_size((N, N)))
    assert float(att.max()) == 1.0 and float(att.min()) > 0
    # central ray through a 31-pixel-wide disc of water: exp(-0.0096 * 31 * 4)
    center = projector.detector_size((N, N)) // 2
    assert float(att[0, center]) == pytest.approx(math.exp(-0.0096 * 31 * PIXEL), rel=1e-6)


def test_forward_is_linear_and_scaled(phantom):
    activity, _, att = phantom
    expected = pet.forward(activity, ANGLES, att, pixel_mm=PIXEL, scale=0.1)
    manual = 0.1 * att * projector.forward_project(activity, ANGLES, pixel_mm=PIXEL)
    assert torch.allclose(expected, manual)
    counts = pet.simulate_counts(expected, torch.Generator().manual_seed(0))
    assert torch.equal(counts, counts.round()) and float(counts.min()) >= 0
    assert float(counts.sum()) == pytest.approx(float(expected.sum()), rel=0.01)


def test_mlem_keeps_total_counts_every_iteration(phantom):
    activity, _, att = phantom
    counts = pet.simulate_counts(pet.forward(activity, ANGLES, att, pixel_mm=PIXEL, scale=0.05),
                                 torch.Generator().manual_seed(1))
    totals = []

    def check(iteration, image):
        model = pet.forward(image, ANGLES, att, pixel_mm=PIXEL, scale=0.05)
        totals.append(float(model.sum()))

    pet.mlem(counts, ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=6, scale=0.05, callback=check)
    assert len(totals) == 6
    assert totals == pytest.approx([float(counts.sum())] * 6, rel=1e-5)


def test_mlem_error_decreases_and_osem_is_faster(phantom):
    activity, _, att = phantom
    counts = pet.forward(activity, ANGLES, att, pixel_mm=PIXEL)  # noiseless
    errors = []
    mlem = pet.mlem(counts, ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=8,
                    callback=lambda k, x: errors.append(_error(x, activity)))
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.5 * errors[0]
    assert _error(mlem, activity) == pytest.approx(errors[-1])
    osem_errors = []
    pet.mlem(counts, ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=8, n_subsets=6,
             callback=lambda k, x: osem_errors.append(_error(x, activity)))
    assert all(o < m for o, m in zip(osem_errors, errors))
    assert osem_errors[1] < errors[7]  # 2 OSEM passes beat 8 MLEM passes


def test_mlem_with_background_and_batch(phantom):
    activity, _, att = phantom
    batch = torch.stack([activity, 2 * activity])  # two slices
    background = torch.full((60, att.shape[-1]), 0.5, dtype=torch.float64)
    counts = pet.forward(batch, ANGLES, att, pixel_mm=PIXEL) + background
    rec = pet.mlem(counts, ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=10, n_subsets=5, background=background)
    assert rec.shape == (2, N, N)
    single = pet.mlem(counts[1], ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=10, n_subsets=5,
                      background=background)
    assert torch.allclose(rec[1], single, rtol=1e-10, atol=1e-10)
    head = activity > 0
    assert float(rec[1][head].mean()) == pytest.approx(float(2 * activity[head].mean()), rel=0.03)


def test_mlem_float32_matches_float64(phantom):
    activity, _, att = phantom
    counts = pet.forward(activity, ANGLES, att, pixel_mm=PIXEL)
    ref = pet.mlem(counts, ANGLES, att, (N, N), pixel_mm=PIXEL, n_iter=5)
    low = pet.mlem(counts.float(), ANGLES, att.float(), (N, N), pixel_mm=PIXEL, n_iter=5)
    assert low.dtype == torch.float32
    assert torch.allclose(low.double(), ref, rtol=1e-3, atol=1e-3)


def test_downsample_upsample():
    volume = torch.rand(8, 6, 4, dtype=torch.float64)
    small = pet.downsample(volume, 2)
    assert small.shape == (4, 3, 2)
    assert float(small.sum()) * 8 == pytest.approx(float(volume.sum()))
    assert float(small[1, 2, 0]) == pytest.approx(float(volume[2:4, 4:6, 0:2].mean()))
    assert torch.allclose(pet.downsample(pet.upsample(small, 2), 2), small)
    assert pet.upsample(small, (2, 3, 1)).shape == (8, 9, 2)
    with pytest.raises(ValueError):
        pet.downsample(volume, 3)


def test_downsampled_affine_keeps_block_centres():
    affine = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
    coarse = pet.downsampled_affine(affine, 2)
    assert np.allclose(np.diag(coarse)[:3], [-4.0, 4.0, 4.0])
    # coarse voxel (3, 1, 2) is the centre of fine voxels 6..7, 2..3, 4..5
    fine_centre = affine @ np.array([6.5, 2.5, 4.5, 1.0])
    assert np.allclose(coarse @ np.array([3, 1, 2, 1.0]), fine_centre)
