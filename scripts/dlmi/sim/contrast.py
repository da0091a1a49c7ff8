"""Contrast randomisation from the physics: training images synthesised from a subject's PD, T1 and T2 maps.

"Synthesis for data augmentation": every training image of a segmentation network is made from the same
ground-truth anatomy with randomly drawn MRI sequence parameters (`draw_sequence`, `synthesize`), then the
nuisances of a real acquisition: a smooth multiplicative bias field (`bias_field`), a lower resolution along
one axis (`change_resolution`) and Gaussian or Rician noise at a drawn SNR (`add_noise`). `augmented_image`
chains them and scales the result to [0, 1] (divided by the 99th percentile of the head, then clipped).

Randomised tissue properties (`random_tissue_table`): with a set probability a training image is made from a
tissue table drawn at random (T1, T2 and PD of every tissue but air, independently, over wide ranges) instead
of the literature's, then put through a sequence of a training family. Every order and spacing of tissue
intensities can then occur, so the network must rely on shape and context rather than on one contrast: the
domain randomisation of SynthSeg (Billot et al. 2023, Med Image Anal 86:102789), here through the signal
equations and the partial-volume tissue fractions rather than per-label Gaussians.

Contrast families (`FAMILIES`): `t1w_ir` (magnitude inversion recovery, MPRAGE-like), `t1w_se` (spin echo,
short TR and TE), `t2w_se` (long TR and TE) and `pdw_se` (long TR, short TE). `pdw_se` is held out
(`HELD_OUT_FAMILY`): training draws only `TRAINING_FAMILIES`, and the held-out family tests whether the
network generalises to a contrast it never saw.

Every draw comes from the numpy Generator passed in (seed it with `dlmi.seeding.rng`), so an image is a
function of (maps, generator state) only, on any device. The signal equations are those of `dlmi.recon.mri`
(`spin_echo_signal`, `inversion_recovery_signal`), the same the study's MRI simulation uses.

Example::

    rng = np.random.default_rng(7)
    maps = dlmi.sim.anatomy.property_maps(truth["fractions"])        # pd, t1_ms, t2_ms, ...
    image, params = augmented_image(maps, rng)                     # float32 in [0, 1], params["family"], ...
"""
from __future__ import annotations

import math

import numpy as np
import torch

from dlmi.recon.mri import sequence_signal
from dlmi.sim.anatomy import property_maps, tissue_properties

# Sequence parameter ranges per contrast family (ms; each drawn uniformly and independently in its range).
# `ascending`: the order of the pure-tissue signals the family is named for, on the tissue properties of
# dlmi.sim.anatomy.tissue_properties() (3 T: CSF T1/T2 4200/2000 ms, GM 1820/99, WM 1084/69; PD 1.0/0.8/0.7).
# Every range was checked on a 21-point grid over its box: the order holds everywhere, with the smallest
# margin (adjacent-class difference / brightest class) given per family; tests/unit/test_contrast.py checks
# 200 draws per family.
FAMILIES: dict[str, dict] = {
    # MPRAGE-like T1w. ADNI's 3 T MPRAGE uses TR 2300, TI 900 ms and a TE of ~3 ms (Jack et al. 2008, JMRI
    # 27:685); the study's own default (acquisition.mri) is TR 2000, TI 900, TE 4 ms, inside the ranges. The
    # model is a magnitude inversion recovery without the readout train, so TI must fall after the GM null
    # and near the CSF null: at TR 2300 the order breaks for TI below 886 ms (GM nearly nulled, CSF
    # brighter), at TR 1800, TI 1200 it still holds. Smallest margin 0.07 (TR 2300, TI 900, TE 6).
    "t1w_ir": {"sequence": "inversion_recovery", "tr_ms": (1800.0, 2300.0), "ti_ms": (900.0, 1200.0),
               "te_ms": (2.0, 6.0), "ascending": ("csf", "gm", "wm")},
    # Textbook T1w spin echo: TR 400-700, TE 8-20 ms (short TR ~ T1 of WM, TE << T2; e.g. McRobbie et al.,
    # MRI from Picture to Proton, 3rd ed., 2017). Smallest margin 0.16 (TR 700, TE 20).
    "t1w_se": {"sequence": "spin_echo", "tr_ms": (400.0, 700.0), "te_ms": (8.0, 20.0),
               "ascending": ("csf", "gm", "wm")},
    # Clinical T2w (turbo) spin echo at 3 T: TR 3000-6000, effective TE 80-120 ms (TR >> T1 of WM and GM,
    # TE ~ T2 of tissue). Smallest margin 0.15 (TR 6000, TE 120).
    "t2w_se": {"sequence": "spin_echo", "tr_ms": (3000.0, 6000.0), "te_ms": (80.0, 120.0),
               "ascending": ("wm", "gm", "csf")},
    # PD-weighted spin echo: short TE 8-20 ms, and a long TR 6000-9000 ms. Clinical PDw at 1.5 T uses TR
    # 2000-3000 ms, but with CSF's T1 of ~4200 ms at 3 T (Lu et al. 2005, JMRI 22:13) CSF only overtakes GM
    # in this model for TR above 4945 ms at TE 8 ms (3467 ms at TE 20); long-TR dual-echo PD/T2 protocols
    # reach such TRs. Gives the PD order WM < GM < CSF; smallest margin 0.06 (TR 6000, TE 8). Held out of
    # training.
    "pdw_se": {"sequence": "spin_echo", "tr_ms": (6000.0, 9000.0), "te_ms": (8.0, 20.0),
               "ascending": ("wm", "gm", "csf")},
}
HELD_OUT_FAMILY = "pdw_se"
TRAINING_FAMILIES = tuple(name for name in FAMILIES if name != HELD_OUT_FAMILY)

# Nuisance defaults of `augmented_image`. Bias: a smooth multiplicative field, the model of N3 (Sled et al.
# 1998, IEEE TMI 17:87), of receive-coil and B1 inhomogeneity, which at 3 T reaches tens of percent over a
# head; the log field's amplitude is drawn up to 0.3, i.e. a field within [0.74, 1.35]. SNR (mean head signal / noise SD)
# drawn log-uniformly over 10-80, which spans clinical 1-2 mm T1w and T2w images. Resolution: slices up to 3x
# thicker than the grid's voxels along one axis (e.g. 6 mm slices of a 2 mm grid).
BIAS_STRENGTH = 0.3
BIAS_DEGREE = 3
SNR_RANGE = (10.0, 80.0)
MAX_RESOLUTION_FACTOR = 3.0
NORMALISING_PERCENTILE = 99.0

# Randomised tissue tables (`random_tissue_table`): per tissue but air, T1 and T2 log-uniform over ranges that
# span fat and bone marrow to free water at 1.5-7 T (T1 200-5000 ms, T2 30-2500 ms), PD uniform in [0.3, 1].
# `augmented_image` draws such a table with probability `random_tissue_probability` (the training rule's
# segmentation.unet.random_tissue_probability).
RANDOM_TISSUE_RANGES = {"t1_ms": (200.0, 5000.0), "t2_ms": (30.0, 2500.0), "pd": (0.3, 1.0)}

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def draw_sequence(rng: np.random.Generator, family: str) -> dict:
    """Draw one parameter set of a contrast family uniformly in the ranges of `FAMILIES[family]`.

    Returns {"family", "sequence" ("spin_echo" | "inversion_recovery"), "tr_ms", "te_ms" and, for inversion
    recovery, "ti_ms"} (floats, ms). Draws TR, then TI (inversion recovery only), then TE.
    """
    if family not in FAMILIES:
        raise ValueError(f"contrast family {family!r} is not one of {', '.join(FAMILIES)}")
    spec = FAMILIES[family]
    sequence = {"family": family, "sequence": spec["sequence"]}
    for key in ("tr_ms", "ti_ms", "te_ms"):
        if key in spec:
            low, high = spec[key]
            sequence[key] = float(rng.uniform(low, high))
    return sequence


def synthesize(pd, t1_ms, t2_ms, sequence: dict) -> torch.Tensor:
    """The noise-free image of `sequence` (as `draw_sequence` gives) for the maps pd, t1_ms, t2_ms (ms).

    Maps: tensors or arrays of one shape, e.g. (X, Y, Z) from `dlmi.sim.anatomy.property_maps`. Returns a
    float32 tensor on the maps' device (the CPU for numpy input), 0 where PD is 0.
    """
    pd, t1, t2 = (torch.as_tensor(v, dtype=torch.float32) for v in (pd, t1_ms, t2_ms))
    return sequence_signal(pd, t1, t2, sequence)


def random_tissue_table(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A tissue property table like `dlmi.sim.anatomy.tissue_properties()` with t1_ms, t2_ms and pd of every
    tissue but air drawn at random, independently (`RANDOM_TISSUE_RANGES`: T1 and T2 log-uniform, PD
    uniform), in the order of `dlmi.labels.TISSUES`; air keeps PD 0 (no signal). Other keys (ct_hu, fdg) are
    the literature's. Draws t1_ms, t2_ms, then pd, each for the tissues in order."""
    table = tissue_properties()
    n = len(table["pd"]) - 1  # tissues after air
    for key, (low, high) in RANDOM_TISSUE_RANGES.items():
        if key == "pd":
            values = rng.uniform(low, high, n)
        else:
            values = np.exp(rng.uniform(math.log(low), math.log(high), n))
        table[key] = np.concatenate([table[key][:1], values])
    return table


def _monomial_exponents(degree: int) -> list[tuple[int, int, int]]:
    return [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)
            if i + j + k > 0]


def bias_field(shape: tuple[int, int, int], rng: np.random.Generator, strength: float = BIAS_STRENGTH, *,
               degree: int = BIAS_DEGREE, device=None) -> torch.Tensor:
    """A smooth multiplicative bias field exp(p), p a random polynomial of total degree 1..`degree`.

    p = sum_m c_m x^i y^j z^k over the voxel centres mapped to [-1, 1] along each axis, coefficients c_m
    uniform in [-1, 1], rescaled so that max |p| over the grid is exactly `strength`: the field lies in
    [exp(-strength), exp(strength)]. Smoothness: along any axis p is a polynomial of degree <= `degree`, so by
    Markov's inequality its derivative in the [-1, 1] coordinate is at most degree^2 * strength, i.e. p changes
    by at most 2 degree^2 strength / (n - 1) between neighbouring voxels of an axis of n. Returns float32 (shape).
    """
    terms = _monomial_exponents(degree)
    coefficients = rng.uniform(-1.0, 1.0, size=len(terms))
    table = torch.zeros((degree + 1,) * 3, dtype=torch.float64)  # coefficient of x^i y^j z^k at [i, j, k]
    for c, term in zip(coefficients, terms):
        table[term] = float(c)
    powers = []  # per axis (n, degree + 1): the voxel coordinates in [-1, 1] raised to 0..degree
    for n in shape:
        t = torch.linspace(-1.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        powers.append(t[:, None] ** torch.arange(degree + 1, dtype=torch.float64))
    log_field = torch.einsum("ijk,xi,yj,zk->xyz", table, *powers).to(device)
    peak = log_field.abs().max()
    log_field = log_field * (strength / peak) if peak > 0 else log_field
    return torch.exp(log_field).float()


def add_noise(image: torch.Tensor, rng: np.random.Generator, snr: float, *, kind: str = "rician",
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """`image` with noise of SD sigma = mean(image[mask]) / snr (mask: default image > 0).

    kind "gaussian": image + sigma n, n standard normal (may go negative); "rician": the magnitude
    |image + sigma (n1 + i n2)| of complex Gaussian noise, as in a magnitude MR image (non-negative; in a
    zero background it is Rayleigh with mean sigma sqrt(pi / 2)). Noise is drawn with numpy from `rng`
    (the same on every device). Returns float32 like `image`.
    """
    image = torch.as_tensor(image, dtype=torch.float32)
    mask = image > 0 if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=image.device)
    sigma = float(image[mask].mean()) / float(snr)

    def normal():
        return torch.from_numpy(rng.standard_normal(tuple(image.shape), dtype=np.float32)).to(image.device)

    if kind == "gaussian":
        return image + sigma * normal()
    if kind == "rician":
        real, imag = normal(), normal()
        return torch.hypot(image + sigma * real, sigma * imag)
    raise ValueError(f"noise kind must be gaussian or rician, not {kind!r}")


def lower_resolution_along(image: torch.Tensor, axis: int, factor: float) -> torch.Tensor:
    """The image acquired with `factor` times coarser resolution along `axis`, back on its own grid.

    Along the axis (n voxels), in Fourier space: the k-space is truncated to the coarse acquisition's
    round(n / factor) samples (frequencies above 1 / (2 factor) cycles per voxel are zeroed, which gives the
    Gibbs ringing of a low-resolution MR acquisition) and weighted by a Gaussian slice profile of FWHM
    `factor` voxels (thick slices). The zero frequency is kept, so the sum along every line of the axis, and
    hence the mean, is preserved exactly; the boundary is periodic (the head sits in air inside its field of
    view). factor 1 only applies the profile of FWHM 1 voxel. Returns a tensor like `image`.
    """
    n = image.shape[axis]
    sigma = factor / _FWHM_PER_SIGMA
    freq = torch.fft.rfftfreq(n, device=image.device, dtype=torch.float64)
    response = torch.exp(-2.0 * (math.pi * sigma * freq) ** 2)
    kept = max(1, round(n / factor))  # coarse samples; their rfft holds frequencies k < kept / 2 (+ Nyquist)
    response = torch.where(torch.arange(freq.numel(), device=image.device) <= kept // 2, response, 0.0)
    shape = [1] * image.ndim
    shape[axis] = response.numel()
    spectrum = torch.fft.rfft(image.double(), dim=axis) * response.reshape(shape)
    return torch.fft.irfft(spectrum, n=n, dim=axis).to(image.dtype)


def change_resolution(image: torch.Tensor, rng: np.random.Generator,
                      max_factor: float = MAX_RESOLUTION_FACTOR) -> tuple[torch.Tensor, dict]:
    """Emulate a coarser acquisition along one random axis (`lower_resolution_along`).

    Draws the axis (0, 1 or 2 of the last three dimensions), then a factor uniformly in [1, max_factor].
    The mean is preserved exactly and the other axes are untouched. Returns the image (float32, shape
    unchanged) and {"axis", "factor"}.
    """
    image = torch.as_tensor(image, dtype=torch.float32)
    axis = int(rng.integers(3))
    factor = float(rng.uniform(1.0, max_factor))
    return lower_resolution_along(image, image.ndim - 3 + axis, factor), {"axis": axis, "factor": factor}


def normalise(image: torch.Tensor, mask: torch.Tensor, percentile: float = NORMALISING_PERCENTILE) -> torch.Tensor:
    """image / (its `percentile`th percentile within mask), clipped to [0, 1]; float32."""
    values = image[mask].flatten()
    k = max(1, min(values.numel(), math.ceil(percentile / 100.0 * values.numel())))
    scale = float(values.kthvalue(k).values)
    scale = scale if scale > 0 else float(values.max()) or 1.0
    return (image / scale).clamp(0.0, 1.0).float()


def augmented_image(maps: dict, rng: np.random.Generator, families: tuple[str, ...] = TRAINING_FAMILIES, *,
                    bias_strength: float = BIAS_STRENGTH, snr_range: tuple[float, float] = SNR_RANGE,
                    max_factor: float = MAX_RESOLUTION_FACTOR, noise: str = "rician",
                    random_tissue_probability: float = 0.0) -> tuple[torch.Tensor, dict]:
    """One randomised training image from a subject's maps {"pd", "t1_ms", "t2_ms"} ((X, Y, Z) each).

    In this order, all from `rng`: when `random_tissue_probability` > 0, whether this image uses a random
    tissue table (probability `random_tissue_probability`; then maps must hold "fractions", (6, X, Y, Z)
    partial-volume fractions in TISSUES order, and the property maps are made from them and the table of
    `random_tissue_table`); a family uniformly among `families` and its sequence (`draw_sequence`);
    the noise-free image (`synthesize`); times a bias field whose log amplitude is drawn uniformly in
    [0, bias_strength] (`bias_field`); a resolution change (`change_resolution`, factor up to `max_factor`;
    1 disables it); `noise` noise ("rician" or "gaussian") at an SNR drawn log-uniformly in `snr_range`
    (`add_noise`, mean over the head: PD > 0). Then divided by the 99th percentile within the head and clipped
    to [0, 1]. Returns the float32 image (X, Y, Z) on the maps' device and the parameters drawn: the sequence
    dict plus "bias_strength", "resolution_axis", "resolution_factor", "snr" and "tissue_table" (None for the
    literature's maps, else the drawn {t1_ms, t2_ms, pd} per tissue as lists).
    """
    table = None
    if random_tissue_probability > 0.0 and rng.uniform() < random_tissue_probability:
        if "fractions" not in maps:
            raise ValueError("augmented_image: a random tissue table needs the tissue fractions (maps['fractions'])")
        table = random_tissue_table(rng)
        maps = property_maps(maps["fractions"], {key: table[key] for key in RANDOM_TISSUE_RANGES})
    family = families[int(rng.integers(len(families)))]
    sequence = draw_sequence(rng, family)
    image = synthesize(maps["pd"], maps["t1_ms"], maps["t2_ms"], sequence)
    head = torch.as_tensor(maps["pd"], device=image.device) > 0
    strength = float(rng.uniform(0.0, bias_strength))
    image = image * bias_field(tuple(image.shape), rng, strength, device=image.device)
    if max_factor > 1.0:
        image, resolution = change_resolution(image, rng, max_factor)
    else:
        resolution = {"axis": None, "factor": 1.0}
    low, high = snr_range
    snr = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    image = add_noise(image, rng, snr, kind=noise, mask=head)
    params = {**sequence, "bias_strength": strength, "resolution_axis": resolution["axis"],
              "resolution_factor": resolution["factor"], "snr": snr,
              "tissue_table": None if table is None else {k: table[k].tolist() for k in RANDOM_TISSUE_RANGES}}
    return normalise(image, head), params
