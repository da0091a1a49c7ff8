"""dlmi.segment.unet: target labels, normalisation, a short training run on synthetic volumes, sliding-window
inference, the checkpoint and its refusals, and the Hausdorff distance against analytic answers and SimpleITK.

Every training here runs on one CPU thread (the loss curve is the same on two; one thread keeps the timing
steady on a shared 2-core machine) with a small network: channels (8, 16, 32), strides (2, 2), 24^3 patches.
"""
import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from dlmi.analysis import metrics
from dlmi.io import InputError
from dlmi.labels import UNET_CLASSES, UNET_LABELS
from dlmi.segment import unet

# Synthetic head: background, an outer CSF-like shell, a GM-like shell, a WM-like core and a CSF-bright
# "ventricle" blob inside the core (same intensity as the shell: told apart by where it is).
INTENSITY = np.array([0.0, 0.3, 0.6, 1.0, 0.3])
NETWORK = {"n_classes": 5, "channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "dropout": 0.0}
PATCH = (24, 24, 24)


def phantom(seed: int, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(normalised image, labels 0..4) of a random nested-ellipsoid head on an n^3 grid, blurred (sigma 0.7
    voxel) with Gaussian noise (SD 0.05 of the WM intensity)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).astype(float)
    centre = n / 2 - 0.5 + rng.uniform(-1.5, 1.5, 3)
    rho = np.linalg.norm((grid - centre) / rng.uniform(10, 13, 3), axis=-1)
    labels = np.zeros((n,) * 3, np.uint8)
    labels[rho < 1.0], labels[rho < 0.8], labels[rho < 0.55] = 1, 2, 3
    blob = centre + rng.uniform(-1, 1, 3)
    labels[np.linalg.norm((grid - blob) / rng.uniform(2, 3.5, 3), axis=-1) < 1] = 4
    image = ndi.gaussian_filter(INTENSITY[labels], 0.7) + rng.normal(0, 0.05, labels.shape)
    return unet.normalize_intensity(image), labels


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_training(epochs: int, steps: int, seed: int = 0, validation=None):
    cohort = [phantom(s) for s in (1, 2, 3)]
    return unet.train(
        [image for image, _ in cohort], [labels for _, labels in cohort], network_config=NETWORK, epochs=epochs,
        batch_size=2, patch_size=PATCH, lr=0.01, seed=seed, device="cpu", steps_per_epoch=steps,
        validation=validation,
    )


@pytest.fixture(scope="module")
def held_out():
    return phantom(10)


@pytest.fixture(scope="module")
def trained(held_out):
    return run_training(epochs=16, steps=5, validation=[held_out])


def metadata(**changes) -> dict:
    base = {
        "labels": {name: UNET_LABELS[name] for name in UNET_CLASSES[:5]},
        "network": NETWORK,
        "voxel_size_mm": [2.0, 2.0, 2.0],
        "normalization": unet.NORMALIZATION,
        "training": {"epochs": 16, "seed": 0},
    }
    return {**base, **changes}


def test_normalize_intensity_is_a_robust_zscore_inside_the_mask():
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 20.0, (24, 24, 24))
    mask = np.zeros(image.shape, bool)
    mask[4:20, 4:20, 4:20] = True
    image[5, 5, 5] = 1e6  # an outlier: clipped, so it moves nothing
    out = unet.normalize_intensity(image, mask)
    assert out.dtype == np.float32
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-3
    np.testing.assert_allclose(unet.normalize_intensity(3.0 * image + 50.0, mask), out, atol=1e-5)
    assert np.all(unet.normalize_intensity(np.full((4, 4, 4), 7.0)) == 0)
    with pytest.raises(ValueError, match="empty"):
        unet.normalize_intensity(image, np.zeros(image.shape, bool))


def test_a_short_training_reduces_the_loss_and_segments_a_held_out_volume(trained, held_out):
    """80 Adam steps (16 epochs of 5, batches of two 24^3 patches from three 32^3 phantoms, lr 0.01), 6 s on
    one core. Measured: loss 1.88 -> 0.18 (epoch 1 -> 16); held-out Dice csf 0.85, gm 0.92, wm 0.91, blob 0.86.
    Bars: loss below a quarter of its first value, every class Dice >= 0.8."""
    model, history = trained
    losses = [record["loss"] for record in history]
    assert [record["epoch"] for record in history] == list(range(1, 17))
    assert losses[-1] < 0.25 * losses[0], losses
    _, found = unet.infer(model, held_out[0], patch_size=PATCH, device="cpu")
    dice = metrics.label_dice(found, held_out[1], range(1, 5))
    assert min(dice.values()) >= 0.8, dice
    # the validation Dice of the last epoch (MONAI's DiceMetric) is the project's Dice of the same labels
    assert history[-1]["dice"] == pytest.approx(dice, abs=1e-6)


def test_infer_gives_probabilities_and_labels_on_any_grid(trained):
    model, _ = trained
    image = np.random.default_rng(1).normal(size=(20, 27, 33)).astype(np.float32)
    probs, labels = unet.infer(model, image, patch_size=PATCH, overlap=0.5, device="cpu")
    assert probs.shape == (5, 20, 27, 33) and probs.dtype == np.float32
    assert labels.shape == (20, 27, 33) and labels.dtype == np.uint8
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(labels, probs.argmax(0))


def test_same_seed_gives_bit_identical_weights_and_leaves_the_callers_generator():
    state = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    first, history = run_training(epochs=2, steps=2, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    second, again = run_training(epochs=2, steps=2, seed=5)
    other, _ = run_training(epochs=2, steps=2, seed=6)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert [r["loss"] for r in history] == [r["loss"] for r in again]
    assert unet.state_hash(a) == unet.state_hash(b) != unet.state_hash(c)


def test_the_checkpoint_loads_and_gives_identical_outputs(trained, held_out, tmp_path):
    model, _ = trained
    path = tmp_path / "unet.pt"
    digest = unet.save_checkpoint(path, model, metadata())
    assert path.stat().st_size < 500_000 and not list(tmp_path.glob(".*"))  # no temporary left
    loaded, recorded = unet.load_checkpoint(path, metadata())
    assert recorded["state_sha256"] == digest == unet.state_hash(model.state_dict())
    assert recorded["training"] == {"epochs": 16, "seed": 0}
    before = unet.infer(model, held_out[0], patch_size=PATCH, device="cpu")
    after = unet.infer(loaded, held_out[0], patch_size=PATCH, device="cpu")
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"labels": dict(UNET_LABELS)}, ["labels.hippocampus_R: missing in the checkpoint vs 5 expected",
                                         "labels.ventricle_R: missing in the checkpoint vs 7 expected"]),
        ({"labels": {**metadata()["labels"], "csf": 3, "wm": 1}},
         ["labels.csf: 1 in the checkpoint vs 3 expected", "labels.wm: 3 in the checkpoint vs 1 expected"]),
        ({"network": {**NETWORK, "channels": [16, 32, 64]}},
         ["network.channels: [8, 16, 32] in the checkpoint vs [16, 32, 64] expected"]),
        ({"voxel_size_mm": [1.0, 1.0, 1.0], "normalization": {"method": "minmax"}},
         ["voxel_size_mm: [2.0, 2.0, 2.0] in the checkpoint vs [1.0, 1.0, 1.0] expected",
          'normalization.method: "zscore" in the checkpoint vs "minmax" expected',
          "normalization.percentiles: [0.5, 99.5] in the checkpoint vs missing expected"]),
    ],
)
def test_a_checkpoint_for_other_inputs_is_refused_naming_each_difference(trained, tmp_path, changes, named):
    path = tmp_path / "unet.pt"
    unet.save_checkpoint(path, trained[0], metadata())
    with pytest.raises(InputError) as err:
        unet.load_checkpoint(path, metadata(**changes))
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for difference in named:
        assert difference in message, message
    unet.load_checkpoint(path, metadata(training={"epochs": 99}))  # the training config is recorded, not checked


def test_a_checkpoint_s_bytes_depend_on_its_content_only(trained, tmp_path):
    """Saved twice under other names (the atomic writer's temporary names differ too): the same bytes, so a
    rerun of the training rule reproduces its output bit for bit."""
    model, _ = trained
    first, second = tmp_path / "a.pt", tmp_path / "b" / "unet.pt"
    second.parent.mkdir()
    for path in (first, second):
        unet.save_checkpoint(path, model, metadata())
    assert first.read_bytes() == second.read_bytes()


def test_a_damaged_checkpoint_is_refused(trained, tmp_path):
    path = tmp_path / "unet.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        unet.load_checkpoint(path, metadata())
    torch.save({"state_dict": {}, "metadata": {}, "code": "x"}, path)
    with pytest.raises(InputError, match="not a dlmi U-Net checkpoint"):
        unet.load_checkpoint(path, metadata())
    unet.save_checkpoint(path, trained[0], metadata())
    record = torch.load(path, weights_only=True)
    next(iter(record["state_dict"].values())).add_(1.0)
    torch.save(record, path)
    with pytest.raises(InputError, match="content hash"):
        unet.load_checkpoint(path, metadata())


def test_training_refuses_a_patch_the_network_cannot_take():
    image, labels = phantom(1)
    with pytest.raises(ValueError, match="multiples of 4"):
        unet.train([image], [labels], network_config=NETWORK, epochs=1, batch_size=1, patch_size=(24, 24, 22),
                   lr=0.01, seed=0, device="cpu")


def test_resynthesize_gives_each_later_epoch_its_own_images():
    """The images of epoch e >= 2 come from resynthesize(e) (e.g. new contrasts); a change of images changes
    the weights, and a resynthesis with a wrong shape is refused."""
    cohort = [phantom(s) for s in (1, 2)]
    images, targets = [image for image, _ in cohort], [labels for _, labels in cohort]
    calls = []

    def inverted(epoch):
        calls.append(epoch)
        return [-image for image in images]

    kwargs = {"network_config": NETWORK, "batch_size": 1, "patch_size": PATCH, "lr": 0.01, "seed": 0,
              "device": "cpu", "steps_per_epoch": 1}
    plain, _ = unet.train(images, targets, epochs=3, **kwargs)
    changed, _ = unet.train(images, targets, epochs=3, resynthesize=inverted, **kwargs)
    assert calls == [2, 3]
    assert unet.state_hash(plain.state_dict()) != unet.state_hash(changed.state_dict())
    with pytest.raises(ValueError, match="differs from its target"):
        unet.train(images, targets, epochs=2, resynthesize=lambda epoch: [image[:-8] for image in images], **kwargs)


def test_mirroring_changes_what_is_learned_and_takes_only_a_permutation_of_the_labels():
    """mirror: half the patches flipped left-right with their labels permuted. Even the identity permutation
    changes the weights (the patches were flipped); a map that is not a permutation is refused."""
    cohort = [phantom(s) for s in (1, 2)]
    images, targets = [image for image, _ in cohort], [labels for _, labels in cohort]
    kwargs = {"network_config": NETWORK, "batch_size": 2, "patch_size": PATCH, "lr": 0.01, "seed": 0,
              "device": "cpu", "steps_per_epoch": 2, "epochs": 1}
    plain, _ = unet.train(images, targets, **kwargs)
    again, _ = unet.train(images, targets, mirror=None, **kwargs)
    mirrored, _ = unet.train(images, targets, mirror=range(5), **kwargs)
    assert unet.state_hash(plain.state_dict()) == unet.state_hash(again.state_dict())
    assert unet.state_hash(plain.state_dict()) != unet.state_hash(mirrored.state_dict())
    with pytest.raises(ValueError, match="not a permutation of the 5 labels"):
        unet.train(images, targets, mirror=[0, 1, 1, 3, 4], **kwargs)


def test_default_network_size():
    """The shipped network (8 classes, five levels, channels 16..128): 1,759,100 parameters, about 7 MB."""
    model = unet.build_network(**unet.NETWORK)
    assert sum(p.numel() for p in model.parameters()) == 1_759_100
    assert unet.build_network(len(UNET_CLASSES)).state_dict().keys() == model.state_dict().keys()


def test_metadata_is_plain_json(trained, tmp_path):
    path = tmp_path / "unet.pt"
    unet.save_checkpoint(path, trained[0], metadata(training={"patch": (24, 24, 24)}))
    _, recorded = unet.load_checkpoint(path, metadata())
    assert json.loads(json.dumps(recorded)) == recorded and recorded["training"]["patch"] == [24, 24, 24]


def test_the_learning_rate_decays_polynomially_to_a_small_last_step():
    lrs = [unet.poly_learning_rate(1e-3, epoch, 10) for epoch in range(1, 11)]
    assert lrs[0] == 1e-3 and lrs == sorted(lrs, reverse=True) and len(set(lrs)) == 10
    assert lrs[-1] == pytest.approx(1e-3 * 0.1 ** 0.9, rel=1e-12)  # (1 - 9/10) ** 0.9 of the initial rate
