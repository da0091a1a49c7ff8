"""The kernels on CUDA agree with the CPU within stated tolerances (skipped where there is no GPU)."""
import numpy as np
import pytest
import torch

from dlmi.recon import ct, mri, pet, projector
from dlmi.register import linear
from dlmi.segment import atlas
from dlmi.spatial import grid, resampling

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def disc_phantom(n=96, dtype=torch.float32):
    y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    r = ((x - n / 2) ** 2 + (y - n / 2 + 5) ** 2).sqrt()
    image = 0.02 * (r < n * 0.4) + 0.01 * (((x - n / 2 - 10) ** 2 + (y - n / 2) ** 2).sqrt() < 8)
    return image.to(dtype)


def test_projector_and_fbp_agree():
    image = disc_phantom()[None].repeat(3, 1, 1)
    angles = np.linspace(0, np.pi, 90, endpoint=False)
    cpu = ct.fbp(projector.forward_project(image, angles), angles, image.shape[-2:])
    gpu = ct.fbp(projector.forward_project(image.cuda(), angles), angles, image.shape[-2:])
    assert gpu.device.type == "cuda"
    # float32 sums in another order: agree within 1e-4 of the disc's attenuation (0.02 / mm)
    assert (gpu.cpu() - cpu).abs().max() < 1e-4 * 0.02


def test_osem_agrees():
    activity = disc_phantom(64, torch.float64) * 400
    angles = np.linspace(0, np.pi, 48, endpoint=False)
    att = pet.attenuation_factors(disc_phantom(64, torch.float64) * 0.5, angles, pixel_mm=4.0)
    counts = pet.forward(activity, angles, att, pixel_mm=4.0)
    kwargs = {"pixel_mm": 4.0, "n_iter": 3, "n_subsets": 4}
    cpu = pet.mlem(counts, angles, att, (64, 64), **kwargs)
    gpu = pet.mlem(counts.cuda(), angles, att.cuda(), (64, 64), **kwargs)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-9)


def test_kspace_round_trip_agrees():
    image = torch.rand(24, 28, 20, dtype=torch.float64)
    sens = mri.coil_sensitivities(image.shape, 4, voxel_mm=2.0, dtype=torch.complex128)
    cpu = mri.reconstruct_kspace(mri.simulate_kspace(image, sens), sens)
    gpu = mri.reconstruct_kspace(mri.simulate_kspace(image.cuda(), sens.cuda()), sens.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)


def test_affine_registration_agrees():
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, 40)] * 3, indexing="ij")
    fixed = np.exp(-((x / 0.6) ** 2 + (y / 0.5) ** 2 + (z / 0.4) ** 2) * 2) + 0.5 * np.exp(-((x - 0.3) ** 2 + y**2 + (z + 0.2) ** 2) * 20)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    truth = np.eye(4)
    truth[:3, 3] = rng.uniform(-4, 4, 3)
    moving = resampling.resample(fixed.astype(np.float32), affine, fixed.shape, affine, np.linalg.inv(truth))
    cpu = linear.affine_register(fixed, moving, affine, affine, device="cpu")
    gpu = linear.affine_register(fixed, moving, affine, affine, device="cuda")
    assert grid.corner_error_mm(gpu, cpu, fixed.shape, affine) < 0.2


def test_partial_volume_fractions_agree():
    rng = np.random.default_rng(0)
    image = torch.tensor(rng.uniform(0.0, 0.2, (30, 30, 30)))
    prior = torch.tensor(np.digitize(image.numpy(), [0.05, 0.11]) + 1, dtype=torch.uint8)
    mask = torch.ones(image.shape, dtype=torch.bool)
    cpu = atlas.partial_volume_fractions(image, mask, atlas.class_means(image, prior, mask))
    means = atlas.class_means(image.cuda(), prior.cuda(), mask.cuda())
    gpu = atlas.partial_volume_fractions(image.cuda(), mask.cuda(), means)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)


def test_unet_inference_agrees():
    """Sliding-window U-Net inference (MONAI) on CUDA against the CPU, same weights and image. cuDNN may run
    the convolutions in TF32 (10-bit mantissa): probabilities within 5e-3, labels equal on 99.9 % of voxels."""
    from dlmi.segment import unet

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = unet.build_network(**unet.NETWORK)
    image = np.random.default_rng(0).standard_normal((48, 40, 56)).astype(np.float32)
    p_cpu, l_cpu = unet.infer(model, image, patch_size=(32, 32, 32), device="cpu")
    p_gpu, l_gpu = unet.infer(model, image, patch_size=(32, 32, 32), device="cuda")
    assert np.abs(p_gpu - p_cpu).max() < 5e-3
    assert (l_gpu == l_cpu).mean() >= 0.999


def test_cnn_scores_agree_and_it_learns_on_cuda():
    from dlmi.analysis import cnn

    rng = np.random.default_rng(0)
    shape, labels = (16, 20, 16), np.repeat([0, 1], 20)
    images = rng.normal(size=(40, *shape))
    images[labels == 1, 3:8, 5:11, 4:9] += 1.5
    rows = images.reshape(40, -1)
    trained = cnn.pipeline("cnn", 0, image_shape=shape, device="cuda").fit(rows[::2], labels[::2])
    scores = trained.decision_function(rows[1::2])
    assert ((scores > 0) == labels[1::2]).mean() >= 0.9  # as on the CPU (tests/unit/test_cnn.py)
    # the same weights on the CPU: float32 convolutions in another order, within 1e-4 of the logits' scale
    estimator = trained[-1]
    estimator.network_.cpu()
    estimator.device = "cpu"
    on_cpu = trained.decision_function(rows[1::2])
    np.testing.assert_allclose(on_cpu, scores, atol=1e-4 * np.abs(scores).max())
