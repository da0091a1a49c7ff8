"""Tissue classification of a T1-weighted image and label fusion with a propagated atlas.

The atlas brings region labels to the subject through an affine registration; an affine transform only
rescales the template's regions, so regional volumes are measured from the subject's own tissue
classification inside each propagated region (grey matter for the hippocampus, CSF for the ventricles).
"""
from __future__ import annotations

import math

import torch

CLASSES = ("csf", "gm", "wm")  # in order of increasing T1-weighted intensity


def gaussian_mixture(
    intensities: torch.Tensor, n_classes: int = 3, *, n_iter: int = 100, tol: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit a 1-D Gaussian mixture by expectation-maximisation.

    intensities: (N,) samples. Initialised at the class quantiles, so components come out sorted by mean.
    Returns (weights (K,), means (K,), variances (K,)) on the device and dtype of `intensities`.
    """
    x = intensities.flatten()
    quantiles = torch.linspace(0.5 / n_classes, 1 - 0.5 / n_classes, n_classes, dtype=x.dtype, device=x.device)
    means = torch.quantile(x[:: max(1, x.numel() // 100_000)], quantiles)
    variances = torch.full_like(means, x.var().item() / n_classes**2)
    weights = torch.full_like(means, 1.0 / n_classes)
    previous = -math.inf
    for _ in range(n_iter):
        log_resp = _log_joint(x, weights, means, variances)
        log_norm = torch.logsumexp(log_resp, dim=1, keepdim=True)
        resp = torch.exp(log_resp - log_norm)
        counts = resp.sum(0) + 1e-12
        weights = counts / x.numel()
        means = (resp * x[:, None]).sum(0) / counts
        variances = (resp * (x[:, None] - means) ** 2).sum(0) / counts + 1e-6 * x.var()
        log_likelihood = log_norm.mean().item()
        if abs(log_likelihood - previous) < tol * abs(log_likelihood):
            break
        previous = log_likelihood
    order = torch.argsort(means)
    return weights[order], means[order], variances[order]


def _log_joint(x, weights, means, variances):
    return (
        torch.log(weights)
        - 0.5 * torch.log(2 * math.pi * variances)
        - 0.5 * (x[:, None] - means) ** 2 / variances
    )


def tissue_posteriors(t1w: torch.Tensor, brain_mask: torch.Tensor, *, n_iter: int = 100) -> torch.Tensor:
    """Posterior probabilities of CSF, GM and WM per voxel of a T1-weighted image.

    t1w: (X, Y, Z) image; brain_mask: (X, Y, Z) bool. Returns (3, X, Y, Z) in the order of `CLASSES`,
    zero outside the mask, summing to 1 inside it.
    """
    mask = brain_mask.bool()
    values = t1w[mask]
    scale = values.abs().max().clamp_min(torch.finfo(values.dtype).tiny)
    weights, means, variances = gaussian_mixture(values / scale, len(CLASSES), n_iter=n_iter)
    log_joint = _log_joint(values / scale, weights, means, variances)
    posterior = torch.softmax(log_joint, dim=1)
    out = torch.zeros((len(CLASSES),) + tuple(t1w.shape), dtype=t1w.dtype, device=t1w.device)
    out[:, mask] = posterior.T
    return out


def hard_labels(posteriors: torch.Tensor, brain_mask: torch.Tensor) -> torch.Tensor:
    """Most probable class per voxel: 0 outside the mask, 1 + index into `CLASSES` inside."""
    labels = posteriors.argmax(0) + 1
    return torch.where(brain_mask.bool(), labels, torch.zeros_like(labels)).to(torch.uint8)


def grow_labels(
    regions: torch.Tensor, labels: tuple[int, ...], radius_vox: int, into: tuple[int, ...] = (0,)
) -> torch.Tensor:
    """Grow the given labels into voxels labelled `into` (default: unlabelled) by `radius_vox` steps of
    6-neighbour dilation.

    Used to turn a propagated ventricle label into a search region: an enlarged ventricle extends past the
    template's outline, and its CSF is then measured inside the grown region (other labels never change).
    regions: (X, Y, Z) integer labels. Returns a new tensor of the same dtype.
    """
    open_labels = torch.as_tensor(into, dtype=regions.dtype, device=regions.device)
    cross = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float32, device=regions.device)
    cross[0, 0, 1, 1, :] = cross[0, 0, 1, :, 1] = cross[0, 0, :, 1, 1] = 1.0
    out = regions.clone()
    for _ in range(radius_vox):
        for label in labels:
            mask = (out == label).to(torch.float32)[None, None]
            grown = torch.nn.functional.conv3d(mask, cross, padding=1)[0, 0] > 0
            growable = grown & torch.isin(out, open_labels)
            out = torch.where(growable, torch.as_tensor(label, dtype=out.dtype, device=out.device), out)
    return out
