"""A 3D U-Net that segments brain tissue classes, hippocampi and lateral ventricles, trained on simulated truth.

The network, loss, sliding-window inference and metrics are MONAI's (`monai.networks.nets.UNet`,
`DiceCELoss`, `sliding_window_inference`, `DiceMetric`, `compute_hausdorff_distance`); this module holds what
MONAI leaves to its user: intensity normalisation, seeded patch sampling (class-balanced, optionally mirrored),
the training loop, and a checkpoint that records what the weights were trained for and refuses to load for
anything else. The training targets come from `dlmi.labels.unet_targets`.

Classes are `dlmi.labels.UNET_CLASSES` (label = index): background, csf, gm, wm, hippocampus_L/R,
ventricle_L/R. Images are (X, Y, Z) arrays in voxel order; the network sees one channel.

References
----------
Ronneberger, Fischer, Brox (2015), U-Net, MICCAI; Çiçek et al. (2016), 3D U-Net, MICCAI; Kerfoot et al.
(2019), residual units of MONAI's UNet, STACOM. MONAI Consortium (2020), MONAI, doi:10.5281/zenodo.4323058.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet

from dlmi.io import InputError, atomic_write
from dlmi.labels import UNET_LABELS

LOG = logging.getLogger(__name__)

# Metadata keys of a checkpoint that change the network or what it is fed: a checkpoint whose values differ
# from what the caller expects is refused (`load_checkpoint`). Other keys (training config, code version,
# history) are recorded, not compared.
CHECKED_KEYS = ("labels", "network", "voxel_size_mm", "normalization")

# The intensity normalisation `normalize_intensity` applies, as a checkpoint records it.
NORMALIZATION = {"method": "zscore", "percentiles": [0.5, 99.5]}

# Exponent of the polynomial learning-rate decay (`poly_learning_rate`), nnU-Net's.
POLY_POWER = 0.9

# The network the workflow trains and ships (`build_network` arguments): five levels, so that a 64^3 patch
# reaches a 4^3 bottom and the receptive field grows (the hippocampus's borders with the amygdala and the
# parahippocampal gyrus are not in the image contrast and must be told from context);
# 1,759,100 parameters, a 7 MB checkpoint.
NETWORK = {"n_classes": len(UNET_LABELS), "channels": [16, 32, 64, 128, 128], "strides": [2, 2, 2, 2],
           "num_res_units": 1, "dropout": 0.0}


def checked_metadata(voxel_mm: float, network: dict | None = None) -> dict:
    """The metadata a checkpoint must carry to segment images of `voxel_mm` isotropic voxels with this code:
    the values of `CHECKED_KEYS` (label table, network, voxel size, intensity normalisation)."""
    return {"labels": dict(UNET_LABELS), "network": dict(network or NETWORK), "voxel_size_mm": [float(voxel_mm)] * 3,
            "normalization": dict(NORMALIZATION)}


def build_network(
    n_classes: int,
    channels: Sequence[int] = tuple(NETWORK["channels"]),
    strides: Sequence[int] = tuple(NETWORK["strides"]),
    num_res_units: int = 1,
    dropout: float = 0.0,
) -> UNet:
    """MONAI's residual 3D U-Net with one input channel and `n_classes` output logits.

    channels: feature maps per level (len(strides) + 1 levels); strides: downsampling per level, so a patch's
    side must be a multiple of their product. Instance normalisation and PReLU (MONAI's defaults).
    With the defaults (`NETWORK`) and 8 classes (UNET_CLASSES): 1,759,100 parameters, a 7 MB checkpoint.
    """
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=int(n_classes),
        channels=tuple(int(c) for c in channels),
        strides=tuple(int(s) for s in strides),
        num_res_units=int(num_res_units),
        dropout=float(dropout),
    )


def normalize_intensity(
    image: np.ndarray, mask: np.ndarray | None = None, percentiles: Sequence[float] = (0.5, 99.5)
) -> np.ndarray:
    """Robust z-score of an image, so that the network sees the same range whatever the scanner's scale.

    The image is clipped to the `percentiles` of its values inside `mask` (the whole image when None; the head
    or brain mask otherwise), then shifted and scaled by the mean and standard deviation of the clipped values
    inside the mask. Voxels outside the mask are transformed the same way (clipped, not zeroed).

    Parameters
    ----------
    image : (X, Y, Z) array, any real dtype and unit.
    mask : (X, Y, Z) boolean array or None.
    percentiles : (low, high) in %, the clipping range (default 0.5, 99.5: `NORMALIZATION`).

    Returns
    -------
    (X, Y, Z) float32 array; inside the mask mean 0 and standard deviation 1 (a constant image gives 0).
    """
    image = np.asarray(image, dtype=np.float64)
    values = image if mask is None else image[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise ValueError("normalize_intensity: the mask is empty")
    lo, hi = np.percentile(values, percentiles)
    clipped = np.clip(values, lo, hi)
    mean, std = clipped.mean(), clipped.std()
    return ((np.clip(image, lo, hi) - mean) / (std if std > 0 else 1.0)).astype(np.float32)


def _check_patch(patch_size: Sequence[int], strides: Sequence[int]) -> tuple[int, int, int]:
    patch = tuple(int(p) for p in patch_size)
    factor = math.prod(int(s) for s in strides)
    if len(patch) != 3 or any(p <= 0 or p % factor for p in patch):
        raise ValueError(f"patch_size {patch} must be three positive multiples of {factor} (the network's strides)")
    return patch


@contextlib.contextmanager
def _deterministic(device: torch.device, seed: int):
    """Seed torch's global generators (weight initialisation, dropout) without disturbing the caller's, and on
    the CPU make torch refuse non-deterministic kernels, restoring the caller's setting afterwards."""
    cuda = [device] if device.type == "cuda" else []
    was = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=cuda, device_type="cuda" if cuda else "cpu"):
        torch.manual_seed(seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was)


class _PatchSampler:
    """Random training patches, class-balanced: each patch is centred on a voxel of a class drawn uniformly
    among the classes present in a uniformly drawn image (so small structures such as the hippocampus are seen
    as often as white matter), clamped to fit inside the image. With `mirror` (a label permutation), half the
    patches, drawn at random, are mirrored along the first (left-right) axis and their labels permuted. All
    draws come from one torch.Generator."""

    def __init__(self, images, targets, patch, generator, mirror=None):
        self.images, self.targets, self.patch, self.generator = images, targets, patch, generator
        self.mirror = None if mirror is None else torch.as_tensor(mirror, dtype=torch.int64)
        self.voxels = [
            [torch.nonzero(t.reshape(-1) == c).reshape(-1) for c in torch.unique(t).tolist()] for t in targets
        ]

    def _draw(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(size):
            i = self._draw(len(self.images))
            voxels = self.voxels[i][self._draw(len(self.voxels[i]))]
            centre = np.unravel_index(int(voxels[self._draw(len(voxels))]), self.targets[i].shape)
            corner = [
                min(max(c - p // 2, 0), n - p) for c, p, n in zip(centre, self.patch, self.targets[i].shape)
            ]
            box = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
            x, y = self.images[i][box], self.targets[i][box]
            if self.mirror is not None and self._draw(2):
                x, y = x.flip(0), self.mirror[y.flip(0)]
            xs.append(x)
            ys.append(y)
        return torch.stack(xs)[:, None], torch.stack(ys)[:, None]


def _as_tensors(images: Sequence[np.ndarray], targets: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """float32 tensors of `images`, checked against the targets' number and shapes."""
    if len(images) != len(targets):
        raise ValueError(f"train: {len(images)} images but {len(targets)} targets")
    out = [torch.as_tensor(np.asarray(im, dtype=np.float32)) for im in images]
    for k, (im, t) in enumerate(zip(out, targets)):
        if im.shape != t.shape:
            raise ValueError(f"train: image {k} {tuple(im.shape)} differs from its target {tuple(t.shape)}")
    return out


def train(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    network_config: dict,
    epochs: int,
    batch_size: int,
    patch_size: Sequence[int],
    lr: float,
    seed: int,
    device: torch.device | str,
    steps_per_epoch: int | None = None,
    validation: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    resynthesize: Callable[[int], Sequence[np.ndarray]] | None = None,
    mirror: Sequence[int] | None = None,
    log: logging.Logger | None = None,
) -> tuple[UNet, list[dict]]:
    """Train a U-Net on whole images with random class-balanced patches.

    Parameters
    ----------
    images : (X, Y, Z) float arrays, already normalised (`normalize_intensity`); sizes may differ.
    targets : (X, Y, Z) integer label maps on the images' grids, labels 0 .. n_classes - 1
        (`dlmi.labels.unet_targets`).
    network_config : keyword arguments of `build_network` (n_classes, channels, strides, num_res_units, dropout).
    epochs, batch_size : `steps_per_epoch` Adam steps of `batch_size` patches per epoch.
    patch_size : (3,) patch side in voxels, multiples of the product of the strides, at most the image size.
    lr : Adam's initial learning rate; epoch e (from 1) trains at lr * (1 - (e - 1) / epochs) ** POLY_POWER.
    seed : seeds the weight initialisation, dropout and the patch draws.
    device : "cpu" or "cuda" (or a torch.device).
    steps_per_epoch : default ceil(len(images) / batch_size), one patch per image per epoch on average.
    validation : (image, target) pairs scored after every epoch with `infer` (patch_size, overlap 0.5).
    resynthesize : called with the epoch number (from 2) before that epoch, returns its images (normalised,
        on the targets' grids), e.g. newly synthesised contrasts (`dlmi.sim.contrast`); None keeps `images`.
    mirror : label permutation for left-right mirroring (label k of a mirrored patch becomes mirror[k], e.g.
        `dlmi.labels.UNET_MIRROR`, which swaps left and right structures); half the training patches are then
        mirrored along the first axis (left-right in RAS+ voxel order). None: no mirroring.
    log : logger for one line per epoch (default: this module's logger).

    Returns
    -------
    (model, history): the trained network on `device` in eval mode; one dict per epoch with "epoch" (from 1),
    "loss" (mean DiceCE loss of its steps), "seconds", and with validation "dice" ({label: mean Dice over the
    validation images} for labels 1 .. n_classes - 1, MONAI's DiceMetric with the convention of
    `dlmi.analysis.metrics.dice`: 1.0 where a class is absent from both).

    Notes
    -----
    Loss: MONAI's DiceCELoss (softmax, one-hot targets, Dice and cross-entropy weighted equally). Learning
    rate: the polynomial decay of nnU-Net (Isensee et al. 2021, Nat Methods 18:203), stepped per epoch, so
    the last epochs refine with small steps. Deterministic
    on the CPU given the seed: torch's global generators are seeded inside `torch.random.fork_rng` (the caller's
    state is restored), the patches come from a torch.Generator seeded with `seed`, and
    `torch.use_deterministic_algorithms(True)` is on during training (restored afterwards). Bit-identical
    weights need the same torch build and thread count. On CUDA the run is seeded but cuDNN may pick
    non-deterministic kernels.
    """
    log = log or LOG
    device = torch.device(device)
    if not images:
        raise ValueError("train: no training images")
    patch = _check_patch(patch_size, network_config.get("strides", (2, 2, 2)))
    tgts = [torch.as_tensor(np.asarray(t, dtype=np.int64)) for t in targets]
    imgs = _as_tensors(images, tgts)
    for k, t in enumerate(tgts):
        if any(p > n for p, n in zip(patch, t.shape)):
            raise ValueError(f"train: target {k} {tuple(t.shape)} is smaller than the patch {patch}")
    steps = steps_per_epoch or math.ceil(len(imgs) / batch_size)
    generator = torch.Generator().manual_seed(int(seed))
    n_classes = network_config["n_classes"]
    if mirror is not None and sorted(int(k) for k in mirror) != list(range(n_classes)):
        raise ValueError(f"train: mirror {list(mirror)} is not a permutation of the {n_classes} labels")
    sampler = _PatchSampler(imgs, tgts, patch, generator, mirror)
    history = []
    with _deterministic(device, int(seed)):
        model = build_network(**network_config).to(device)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = poly_learning_rate(lr, epoch, epochs)
            if resynthesize is not None and epoch > 1:
                sampler.images = _as_tensors(resynthesize(epoch), tgts)
            model.train()
            losses = []
            for _ in range(steps):
                x, y = sampler.batch(batch_size)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x.to(device)), y.to(device))
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            record = {"epoch": epoch, "loss": float(np.mean(losses))}
            if validation:
                record["dice"] = validation_dice(model, validation, patch_size=patch, device=device)
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            dice = record.get("dice")
            mean_dice = f", validation mean Dice {np.mean(list(dice.values())):.3f}" if dice else ""
            log.info("epoch %d/%d: loss %.4f%s (%.1f s)", epoch, epochs, record["loss"], mean_dice, record["seconds"])
    model.eval()
    return model, history


def poly_learning_rate(lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of epoch `epoch` (1 .. epochs): lr * (1 - (epoch - 1) / epochs) ** POLY_POWER."""
    return float(lr) * (1.0 - (epoch - 1) / epochs) ** POLY_POWER


def validation_dice(
    model: torch.nn.Module,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    patch_size: Sequence[int],
    device: torch.device | str,
) -> dict[int, float]:
    """Mean Dice per foreground label over (image, target) pairs, segmenting each image with `infer`.

    MONAI's DiceMetric (ignore_empty=False: 1.0 where a class is absent from both, as
    `dlmi.analysis.metrics.dice`). Returns {label: Dice} for labels 1 .. C - 1.
    """
    n_classes = int(model.out_channels)
    metric = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=False)
    for image, target in pairs:
        _, found = infer(model, image, patch_size=patch_size, device=device)
        one_hot = torch.eye(n_classes)
        pred = one_hot[torch.as_tensor(found, dtype=torch.int64)].permute(3, 0, 1, 2)[None]
        true = one_hot[torch.as_tensor(np.asarray(target), dtype=torch.int64)].permute(3, 0, 1, 2)[None]
        metric(pred, true)
    per_class = metric.aggregate().tolist()
    return {label: float(d) for label, d in zip(range(1, n_classes), per_class)}


def infer(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    device: torch.device | str,
    sw_batch_size: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment a whole (normalised) image by sliding-window inference (MONAI, Gaussian-weighted blending).

    Parameters
    ----------
    model : a network from `build_network` or `load_checkpoint`.
    image : (X, Y, Z) float array, normalised as in training (`normalize_intensity`); any size (padded).
    patch_size : (3,) window side in voxels; overlap : fraction of a window shared with its neighbour.
    device : where the network runs; sw_batch_size : windows per forward pass.

    Returns
    -------
    (probabilities, labels): (C, X, Y, Z) float32 softmax of the blended logits, and (X, Y, Z) uint8 argmax.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(
            x, tuple(int(p) for p in patch_size), sw_batch_size, model, overlap=overlap, mode="gaussian"
        )
        probs = torch.softmax(logits[0].float(), dim=0)
        labels = probs.argmax(0).to(torch.uint8)
    return probs.cpu().numpy(), labels.cpu().numpy()


def state_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's content: each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _plain(value):
    """JSON-plain copy (tuples become lists, keys strings), so that recorded and expected values compare."""
    return json.loads(json.dumps(value))


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, metadata: dict) -> str:
    """Write the model's weights and `metadata` to `path` atomically (torch.save of plain types only).

    metadata: JSON-serialisable; it should hold the `CHECKED_KEYS` ("labels": name -> label, "network": the
    `build_network` arguments, "voxel_size_mm", "normalization") and may hold anything else (training
    config, code version, history). The content hash of the weights is added as "state_sha256".
    Returns that hash. The file's bytes depend on the weights and metadata only (byte-identical reruns).
    """
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    digest = state_hash(state)
    record = {"state_dict": state, "metadata": _plain({**metadata, "state_sha256": digest})}
    buffer = io.BytesIO()  # torch.save names the archive inside after a path: a buffer keeps the bytes
    torch.save(record, buffer)  # the same for the same weights, whatever the (temporary) file name
    with atomic_write(path, ".pt") as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
    return digest


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key in value:
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: value}


def metadata_differences(recorded: dict, expected: dict) -> list[str]:
    """The `CHECKED_KEYS` where `recorded` and `expected` differ, as "key.sub: recorded vs expected" (nested
    dicts compared item by item; "missing" where one side lacks an item). Every checked key must be in
    `expected`."""
    absent = [key for key in CHECKED_KEYS if key not in expected]
    if absent:
        raise ValueError(f"expected checkpoint metadata lacks {', '.join(absent)}")
    missing = object()

    def show(value) -> str:
        return "missing" if value is missing else json.dumps(value)

    diffs = []
    for key in CHECKED_KEYS:
        got = _flatten(_plain(recorded[key]), key) if key in recorded else {key: missing}
        want = _flatten(_plain(expected[key]), key)
        for item in sorted(set(got) | set(want)):
            a, b = got.get(item, missing), want.get(item, missing)
            if a is missing or b is missing or a != b:
                diffs.append(f"{item}: {show(a)} in the checkpoint vs {show(b)} expected")
    return diffs


def load_checkpoint(path: str | os.PathLike, expected: dict) -> tuple[UNet, dict]:
    """Load a checkpoint written by `save_checkpoint`, if it was trained for what the caller expects.

    Parameters
    ----------
    path : the checkpoint file.
    expected : the values of `CHECKED_KEYS` the caller will use (label table, network config, voxel size,
        intensity normalisation).

    Returns
    -------
    (model, metadata): the network on the CPU in eval mode, and the recorded metadata.

    Raises
    ------
    dlmi.io.InputError
        One line naming the file: unreadable, not a checkpoint, weights that do not match their hash or the
        recorded network, or each checked key that differs from `expected` with both values.

    Notes
    -----
    Read with `torch.load(weights_only=True)`: only tensors and plain containers are unpickled, never code.
    """
    path = Path(path)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    if not isinstance(record, dict) or set(record) != {"state_dict", "metadata"}:
        raise InputError(f"{path}: not a dlmi U-Net checkpoint (expected the keys state_dict and metadata)")
    state, metadata = record["state_dict"], record["metadata"]
    diffs = metadata_differences(metadata, expected)
    if diffs:
        raise InputError(f"{path}: checkpoint trained for other inputs: {'; '.join(diffs)}")
    if state_hash(state) != metadata.get("state_sha256"):
        raise InputError(f"{path}: weights do not match their recorded content hash (state_sha256): file corrupted")
    model = build_network(**metadata["network"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not fit the recorded network: {str(err).splitlines()[0]}") from err
    return model.eval(), metadata
