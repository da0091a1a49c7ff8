"""Tissue classification of a T1-weighted image and label fusion with a propagated atlas.

The atlas brings region labels and tissue priors to the subject through the inverse of its registration
to the template. Regional volumes are measured from the subject's own partial-volume tissue fractions
inside each propagated region (grey matter for the hippocampus, CSF for the ventricles), so atrophy shows
even where the registration does not follow it.
"""
from __future__ import annotations

import torch

from dlmi.io import InputError
from dlmi.labels import BRAIN_CLASSES, TISSUE_LABELS


def hard_labels(posteriors: torch.Tensor, brain_mask: torch.Tensor) -> torch.Tensor:
    """Dominant class per voxel of (3, X, Y, Z) fractions or posteriors in `BRAIN_CLASSES` order: its tissue
    label (dlmi.labels.TISSUE_LABELS) inside the mask, 0 outside."""
    lookup = torch.tensor([TISSUE_LABELS[name] for name in BRAIN_CLASSES], device=posteriors.device)
    labels = lookup[posteriors.argmax(0)]
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


def class_means(t1w: torch.Tensor, prior: torch.Tensor, mask: torch.Tensor, *, erosion_vox: int = 1) -> torch.Tensor:
    """Pure-tissue intensities of CSF, GM and WM, estimated from a prior label map.

    t1w: (X, Y, Z); prior: (X, Y, Z) tissue labels (dlmi.labels.TISSUE_LABELS; e.g. the template's tissue
    labels propagated to the subject); mask: brain mask. The mean of each class is the median intensity of its prior voxels that
    stay inside the class after `erosion_vox` 6-neighbour erosions (away from partial-volume edges), so a
    prior that is off by a voxel or two at the edges does not bias it. Returns (3,) in `BRAIN_CLASSES` order.
    """
    cross = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float32, device=t1w.device)
    cross[0, 0, 1, 1, :] = cross[0, 0, 1, :, 1] = cross[0, 0, :, 1, 1] = 1.0
    means = []
    for name in BRAIN_CLASSES:
        core = ((prior == TISSUE_LABELS[name]) & mask.bool()).to(torch.float32)
        for _ in range(erosion_vox):
            eroded = torch.nn.functional.conv3d(core[None, None], cross, padding=1)[0, 0] >= 7
            core = eroded.to(torch.float32) if eroded.any() else core
        values = t1w[core.bool()]
        if values.numel() == 0:
            raise InputError(f"no {name} voxels in the prior label map inside the brain mask")
        means.append(values.median())
    return torch.stack(means)


def partial_volume_fractions(t1w: torch.Tensor, mask: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """CSF, GM and WM fractions per voxel by two-compartment linear unmixing of intensities.

    A voxel darker than the GM mean is a CSF/GM mixture, a brighter one a GM/WM mixture; its fractions
    are the convex weights that reproduce its intensity from the class `means` (3,), clipped to [0, 1]
    (the partial-volume model of e.g. Shattuck et al. 2001; it assumes means[0] < means[1] < means[2], the
    T1-weighted order). Returns (3, X, Y, Z) in `BRAIN_CLASSES` order, zero outside `mask`, summing to 1 inside.
    """
    csf, gm, wm = means
    if not csf < gm < wm:
        raise InputError(f"tissue means must increase CSF < GM < WM for a T1-weighted image, got {means.tolist()}")
    low = ((t1w - csf) / (gm - csf)).clamp(0, 1)  # GM share of a CSF/GM voxel
    high = ((t1w - gm) / (wm - gm)).clamp(0, 1)  # WM share of a GM/WM voxel
    dark = t1w <= gm
    fractions = torch.stack([
        torch.where(dark, 1 - low, torch.zeros_like(t1w)),
        torch.where(dark, low, 1 - high),
        torch.where(dark, torch.zeros_like(t1w), high),
    ])
    return fractions * mask.bool()
