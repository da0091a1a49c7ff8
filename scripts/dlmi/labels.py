"""The study's label tables: tissue classes, brain regions and U-Net classes with their integer labels, defined
once, and the maps between them (U-Net targets from tissue and regions, back to tissue, left-right mirror).

Every label map of the workflow uses these numbers: the simulated ground truth (`dlmi.sim.anatomy`), the
template's tissue prior and region atlas, the segmentation (`dlmi.segment.atlas`), the features and the
quality tables. `dseg_table` writes them as BIDS lookup tables (`resources/*_dseg.tsv`, columns `index`,
`name`), the form in which a derivative dataset declares what its `*_dseg.nii.gz` integers mean.
"""
from __future__ import annotations

import numpy as np

# Tissue classes of the simulated head; the label of a class is its index (background is 0).
TISSUES = ("background", "csf", "gm", "wm", "scalp", "bone")
TISSUE_LABELS = {name: label for label, name in enumerate(TISSUES)}
BACKGROUND, CSF, GM, WM, SCALP, BONE = (TISSUE_LABELS[name] for name in TISSUES)

# The classes a brain segmentation separates, in order of increasing T1-weighted intensity; a segmentation's
# hard label map uses their tissue labels (1, 2, 3) and 0 outside the brain.
BRAIN_CLASSES = ("csf", "gm", "wm")

# Brain regions (grouped AAL labels, ventricles from CSF); 0 is outside every region.
REGIONS = {
    "none": 0,
    "hippocampus_L": 1,
    "hippocampus_R": 2,
    "ventricle_L": 3,
    "ventricle_R": 4,
    "frontal": 5,
    "temporal": 6,
    "parietal": 7,
    "occipital": 8,
    "cerebellum": 9,
    "limbic": 10,
    "deep_gm": 11,
}
REFERENCE_REGION = "cerebellum"  # SUVR reference (FDG uptake spared in AD)

# Classes of the U-Net segmentation (dlmi.segment.unet): background, the brain tissue classes, then the small
# regions whose volumes the study reads, each side apart. The label of a class is its index, so csf, gm and wm
# keep their TISSUE_LABELS numbers; the regions follow in REGIONS order.
UNET_REGIONS = ("hippocampus_L", "hippocampus_R", "ventricle_L", "ventricle_R")
UNET_CLASSES = (TISSUES[BACKGROUND], *BRAIN_CLASSES, *UNET_REGIONS)
UNET_LABELS = {name: label for label, name in enumerate(UNET_CLASSES)}
# The U-Net label of each U-Net label in a left-right mirrored image (index = label): left and right swap.
UNET_MIRROR = tuple(
    UNET_LABELS[name[:-1] + {"L": "R", "R": "L"}[name[-1]] if name[-2:] in ("_L", "_R") else name]
    for name in UNET_CLASSES
)


def unet_targets(tissue: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """The U-Net's target label map from a tissue label map and a region map of the same grid.

    Parameters
    ----------
    tissue : (X, Y, Z) integer array of `TISSUE_LABELS`.
    regions : (X, Y, Z) integer array of `REGIONS`.

    Returns
    -------
    (X, Y, Z) uint8 array of `UNET_LABELS`: csf, gm and wm from the tissue map; the hippocampus and
    ventricle regions (`UNET_REGIONS`) override the tissue class; background, scalp and bone are 0 (background),
    also where a region label reaches them.
    """
    tissue, regions = np.asarray(tissue), np.asarray(regions)
    if tissue.shape != regions.shape:
        raise ValueError(f"tissue and region maps differ in shape: {tissue.shape} vs {regions.shape}")
    out = np.zeros(tissue.shape, np.uint8)
    for name in BRAIN_CLASSES:
        out[tissue == TISSUE_LABELS[name]] = UNET_LABELS[name]
    brain = out > 0
    for name in UNET_REGIONS:
        out[(regions == REGIONS[name]) & brain] = UNET_LABELS[name]
    return out


def unet_to_tissue(labels: np.ndarray) -> np.ndarray:
    """The tissue label map (`TISSUE_LABELS`: 0, csf, gm, wm) of a U-Net label map: hippocampi back
    into grey matter, ventricles into CSF (the inverse of `unet_targets` on the brain)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.uint8)
    for name in BRAIN_CLASSES:
        out[labels == UNET_LABELS[name]] = TISSUE_LABELS[name]
    for name in UNET_REGIONS:
        out[labels == UNET_LABELS[name]] = TISSUE_LABELS["gm" if name.startswith("hippocampus") else "csf"]
    return out


DSEG_TABLES = {"tissue": TISSUE_LABELS, "regions": REGIONS, "unet": UNET_LABELS}


def dseg_table(kind: str) -> str:
    """The BIDS `dseg.tsv` lookup table of one label map kind ("tissue", "regions" or "unet"): a header line
    `index<TAB>name`, then one line per label in increasing order, background included."""
    labels = DSEG_TABLES[kind]
    lines = ["index\tname"] + [f"{label}\t{name}" for name, label in sorted(labels.items(), key=lambda kv: kv[1])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m dlmi.labels resources: (re)write the shipped lookup tables
    import sys
    from pathlib import Path

    for kind in DSEG_TABLES:
        (Path(sys.argv[1]) / f"{kind}_dseg.tsv").write_text(dseg_table(kind))
