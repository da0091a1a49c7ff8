"""dlmi.sim.contrast: physics-based contrast randomisation and acquisition nuisances, on tiny grids."""
import math

import numpy as np
import pytest
import torch

from dlmi.labels import TISSUE_LABELS
from dlmi.sim import contrast
from dlmi.sim.anatomy import property_maps, tissue_properties


def tiny_fractions(shape=(12, 10, 8)):
    """Tissue fractions (6, X, Y, Z) of a small head: air around a box of CSF, GM, WM and GM slabs along the
    first axis."""
    fractions = np.zeros((6, *shape), np.float32)
    fractions[TISSUE_LABELS["background"]] = 1.0
    layers = ["csf", "gm", "wm", "gm"]
    for x in range(2, shape[0] - 2):
        tissue = TISSUE_LABELS[layers[min((x - 2) * len(layers) // (shape[0] - 4), len(layers) - 1)]]
        fractions[:, x, 2:-2, 2:-2] = 0.0
        fractions[tissue, x, 2:-2, 2:-2] = 1.0
    return fractions


def tiny_maps(shape=(12, 10, 8)):
    """Property maps of `tiny_fractions`."""
    return property_maps(tiny_fractions(shape))


def test_the_held_out_family_is_a_family_and_not_a_training_one():
    assert contrast.HELD_OUT_FAMILY in contrast.FAMILIES
    assert contrast.HELD_OUT_FAMILY not in contrast.TRAINING_FAMILIES
    assert set(contrast.TRAINING_FAMILIES) | {contrast.HELD_OUT_FAMILY} == set(contrast.FAMILIES)
    assert set(contrast.TRAINING_FAMILIES) >= {"t1w_ir", "t1w_se", "t2w_se"}


@pytest.mark.parametrize("family", list(contrast.FAMILIES))
def test_every_drawn_sequence_gives_the_contrast_order_of_its_family(family):
    """200 draws per family, pure CSF, GM and WM of the simulator: the order the family is named for
    (T1w: CSF < GM < WM; T2w and PDw: WM < GM < CSF), each draw within the family's ranges."""
    table = tissue_properties()
    names = ("csf", "gm", "wm")
    index = [TISSUE_LABELS[name] for name in names]
    pd, t1, t2 = (torch.as_tensor(table[key][index], dtype=torch.float32) for key in ("pd", "t1_ms", "t2_ms"))
    spec, rng = contrast.FAMILIES[family], np.random.default_rng(1)
    for _ in range(200):
        sequence = contrast.draw_sequence(rng, family)
        for key, (low, high) in ((k, v) for k, v in spec.items() if k.endswith("_ms")):
            assert low <= sequence[key] <= high
        signal = dict(zip(names, contrast.synthesize(pd, t1, t2, sequence).tolist()))
        ordered = [signal[name] for name in spec["ascending"]]
        assert ordered[0] < ordered[1] < ordered[2], (sequence, signal)


def test_training_never_draws_the_held_out_family():
    rng, maps = np.random.default_rng(3), tiny_maps((6, 6, 6))
    seen = {contrast.augmented_image(maps, rng)[1]["family"] for _ in range(60)}
    assert seen == set(contrast.TRAINING_FAMILIES)
    with pytest.raises(ValueError, match="contrast family 'flair'"):
        contrast.draw_sequence(rng, "flair")


def test_a_fixed_seed_gives_the_same_image_and_another_seed_another():
    maps = tiny_maps()
    first, params = contrast.augmented_image(maps, np.random.default_rng(42))
    again, params_again = contrast.augmented_image(maps, np.random.default_rng(42))
    other, _ = contrast.augmented_image(maps, np.random.default_rng(43))
    assert torch.equal(first, again) and params == params_again
    assert not torch.equal(first, other)


def test_the_image_is_float32_non_negative_scaled_to_the_unit_range():
    maps = tiny_maps()
    rng = np.random.default_rng(5)
    for family in contrast.FAMILIES:
        image, params = contrast.augmented_image(maps, rng, families=(family,))
        assert image.dtype == torch.float32 and image.shape == maps["pd"].shape
        assert float(image.min()) >= 0.0 and float(image.max()) == 1.0
        head = maps["pd"] > 0
        assert np.mean(image.numpy()[head] >= 1.0) <= 0.02  # only the top percent saturates
        assert params["family"] == family


def test_the_bias_field_is_smooth_and_within_its_range():
    """exp(p) with max |p| = strength; neighbouring voxels differ in p by at most 2 d^2 strength / (n - 1)
    (Markov's inequality for a polynomial of degree d on [-1, 1])."""
    shape, strength, degree = (17, 13, 9), 0.4, contrast.BIAS_DEGREE
    for seed in range(5):
        log_field = torch.log(contrast.bias_field(shape, np.random.default_rng(seed), strength)).double()
        assert float(log_field.abs().max()) == pytest.approx(strength, rel=1e-5)
        for axis, n in enumerate(shape):
            step = float(log_field.diff(dim=axis).abs().max())
            assert step <= 2 * degree**2 * strength / (n - 1) + 1e-6
            assert step <= strength  # smooth: no jump of the full range between neighbours


@pytest.mark.parametrize("snr", [5.0, 20.0, 80.0])
def test_gaussian_noise_has_the_requested_snr(snr):
    """SNR = mean signal in the mask / SD of the noise: measured within 2 % on 40^3 voxels (the SD estimate of
    64000 samples has a relative SD of 0.3 %)."""
    image = torch.full((40, 40, 40), 0.5)
    image[:, :, :20] = 1.5  # mean 1.0
    noisy = contrast.add_noise(image, np.random.default_rng(0), snr, kind="gaussian")
    measured = float(image.mean()) / float((noisy - image).std())
    assert measured == pytest.approx(snr, rel=0.02)


def test_rician_noise_is_rayleigh_in_the_background_and_keeps_the_snr_in_bright_tissue():
    image = torch.zeros(40, 40, 40)
    image[:, :, 20:] = 2.0  # mean over the mask (image > 0): 2.0
    snr = 40.0
    noisy = contrast.add_noise(image, np.random.default_rng(1), snr, kind="rician")
    sigma = 2.0 / snr
    assert float(noisy.min()) >= 0.0
    assert float(noisy[:, :, :20].mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.02)
    assert 2.0 / float(noisy[:, :, 20:].std()) == pytest.approx(snr, rel=0.02)  # Gaussian at high SNR


def test_a_resolution_change_preserves_the_mean_and_acts_along_its_axis_only():
    maps = tiny_maps((24, 20, 16))
    image = contrast.synthesize(maps["pd"], maps["t1_ms"], maps["t2_ms"],
                                {"sequence": "spin_echo", "tr_ms": 500.0, "te_ms": 15.0})
    axes = set()
    for seed in range(12):
        changed, drawn = contrast.change_resolution(image, np.random.default_rng(seed), max_factor=3.0)
        axis, factor = drawn["axis"], drawn["factor"]
        axes.add(axis)
        assert 1.0 <= factor <= 3.0 and changed.shape == image.shape and changed.dtype == torch.float32
        assert float(changed.mean()) == pytest.approx(float(image.mean()), rel=1e-5)
        # every line along the axis keeps its sum: nothing moves across lines, i.e. between the other axes
        np.testing.assert_allclose(changed.sum(dim=axis).numpy(), image.sum(dim=axis).numpy(), rtol=1e-4, atol=1e-6)
        # and nothing is left above the coarse acquisition's highest frequency
        n = image.shape[axis]
        spectrum = torch.fft.rfft(changed.double(), dim=axis).abs().movedim(axis, 0)
        assert float(spectrum[round(n / factor) // 2 + 1:].sum()) < 1e-4
        assert float((changed - image).abs().max()) > 1e-3  # it did change the image
    assert axes == {0, 1, 2}


def test_numpy_and_torch_maps_give_the_same_image():
    maps = tiny_maps()
    from_numpy, _ = contrast.augmented_image(maps, np.random.default_rng(9))
    from_torch, _ = contrast.augmented_image({k: torch.from_numpy(v) for k, v in maps.items()},
                                             np.random.default_rng(9))
    assert torch.equal(from_numpy, from_torch)


def test_a_random_tissue_table_draws_every_tissue_but_air_within_its_ranges():
    literature, rng = tissue_properties(), np.random.default_rng(4)
    tables = [contrast.random_tissue_table(rng) for _ in range(200)]
    for key, (low, high) in contrast.RANDOM_TISSUE_RANGES.items():
        values = np.array([table[key] for table in tables])  # (200, 6)
        assert np.all(values[:, 0] == literature[key][0])  # air: PD 0, no signal
        assert np.all((values[:, 1:] >= low) & (values[:, 1:] <= high))
        # each tissue's draws reach both ends of the range (within a tenth of it, on the log scale for T1, T2)
        scale = np.log if key != "pd" else (lambda v: v)
        span = scale(high) - scale(low)
        assert np.all(scale(values[:, 1:].min(axis=0)) < scale(low) + 0.1 * span)
        assert np.all(scale(values[:, 1:].max(axis=0)) > scale(high) - 0.1 * span)
    for key in ("ct_hu", "fdg"):
        assert all(np.array_equal(table[key], literature[key]) for table in tables)


def test_random_tissue_tables_give_every_order_of_csf_gm_and_wm():
    """With random tissues a training family is no longer tied to its order: over 300 draws of one sequence
    family every one of the six orders of the pure CSF, GM and WM intensities occurs, and the literature's
    tissues keep their family's order (probability 0 draws nothing more)."""
    fractions = tiny_fractions()
    maps = {**property_maps(fractions), "fractions": fractions}
    centres = {name: (2 + 2 * k, 5, 4) for k, name in enumerate(("csf", "gm", "wm"))}  # one voxel per slab
    rng, orders = np.random.default_rng(6), set()
    for _ in range(300):
        image, params = contrast.augmented_image(maps, rng, families=("t1w_se",), random_tissue_probability=1.0,
                                                 snr_range=(1e6, 1e6), max_factor=1.0, bias_strength=0.0)
        assert params["tissue_table"] is not None
        values = {name: float(image[c]) for name, c in centres.items()}
        orders.add(tuple(sorted(values, key=values.get)))
    assert len(orders) == 6
    plain, params = contrast.augmented_image(maps, np.random.default_rng(6), families=("t1w_se",))
    again, _ = contrast.augmented_image(maps, np.random.default_rng(6), families=("t1w_se",),
                                        random_tissue_probability=0.0)
    assert params["tissue_table"] is None and torch.equal(plain, again)
    values = {name: float(plain[c]) for name, c in centres.items()}
    assert values["csf"] < values["gm"] < values["wm"]


def test_a_random_tissue_table_needs_the_tissue_fractions():
    with pytest.raises(ValueError, match="fractions"):
        contrast.augmented_image(tiny_maps(), np.random.default_rng(0), random_tissue_probability=1.0)
