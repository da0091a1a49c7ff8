"""What a U-Net label's border touches: for each small structure of one subject's true U-Net labels, the share
of its boundary faces (6-neighbourhood) against each other label. A border against another label of the same
tissue (the hippocampus against other grey matter) shows in no image contrast.

    python bench/label_boundaries.py results/training/sub-train021/anat/sub-train021_

(the prefix of a subject's seg-tissue_desc-truth_dseg and seg-regions_desc-truth_dseg files).
"""
from __future__ import annotations

import sys

import numpy as np

from dlmi import io
from dlmi.labels import UNET_CLASSES, UNET_REGIONS, unet_targets


def boundary_shares(labels: np.ndarray, label: int) -> dict[str, float]:
    """{neighbouring class: share of `label`'s boundary faces}, over the 6-neighbourhood (no wrap-around)."""
    counts = np.zeros(len(UNET_CLASSES), np.int64)
    inside = labels == label
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        for here, there in ((tuple(lo), tuple(hi)), (tuple(hi), tuple(lo))):
            faces = inside[here] & (labels[there] != label)
            counts += np.bincount(labels[there][faces], minlength=len(UNET_CLASSES))
    total = counts.sum()
    return {UNET_CLASSES[k]: counts[k] / total for k in np.flatnonzero(counts)} if total else {}


def main(prefix: str) -> None:
    tissue = io.load_nifti(f"{prefix}seg-tissue_desc-truth_dseg.nii.gz", dtype=np.uint8)[0]
    regions = io.load_nifti(f"{prefix}seg-regions_desc-truth_dseg.nii.gz", dtype=np.uint8)[0]
    labels = unet_targets(tissue, regions)
    for name in UNET_REGIONS:
        label = UNET_CLASSES.index(name)
        shares = boundary_shares(labels, label)
        print(f"{name}: {int((labels == label).sum())} voxels; boundary faces against "
              + ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main(sys.argv[1])
