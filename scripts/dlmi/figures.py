"""QC figures: mid-slice mosaics with optional overlays, one row per subject."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dlmi.io import atomic_write

VIEWS = ("sagittal", "coronal (R|L)", "axial (R|L)")


def mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial mid-slices of an (X, Y, Z) RAS+ volume as 2-D display arrays.

    Row 0 is the top of the picture. Sagittal: superior up, anterior on the right. Coronal and axial:
    radiological convention, the patient's right (+x in RAS+) on the viewer's left; coronal superior up,
    axial anterior up.
    """
    x, y, z = (s // 2 for s in volume.shape)
    sagittal = volume[x, :, :].T[::-1, :]       # rows z high->low, cols y low->high (posterior->anterior)
    coronal = volume[:, y, :].T[::-1, ::-1]     # rows z high->low, cols x high->low (right->left)
    axial = volume[:, :, z].T[::-1, ::-1]       # rows y high->low, cols x high->low (right->left)
    return [sagittal, coronal, axial]


def mosaic(rows, path, *, overlay_kind: str | None = None, title: str = "", window=None) -> None:
    """Save a mosaic: one row per (label, image, overlay) with the three mid-slices of each image.

    image and overlay are (X, Y, Z) arrays on the same grid. overlay_kind: None, "contour" (outline of a
    mask), "heat" (a colour map over the image) or "labels" (a label map in colour). window: (low, high)
    display range (e.g. a CT brain window in HU); default the 1st-99.5th percentile of each image.
    The PNG at `path` is written atomically (`dlmi.io.atomic_write`).
    """
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.3 * len(rows)), squeeze=False)
    for r, (label, image, overlay) in enumerate(rows):
        low, high = window if window is not None else np.percentile(image, [1, 99.5])
        slices = mid_slices(image)
        overlays = mid_slices(overlay) if overlay is not None else [None] * 3
        for c, (ax, picture, extra) in enumerate(zip(axes[r], slices, overlays)):
            ax.imshow(picture, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            if extra is not None and overlay_kind == "contour":
                ax.contour(extra > 0.5, levels=[0.5], colors="r", linewidths=0.6)
            elif extra is not None and overlay_kind == "heat":
                ax.imshow(np.ma.masked_less_equal(extra, np.percentile(extra, 60)), cmap="hot", alpha=0.5)
            elif extra is not None and overlay_kind == "labels":
                ax.imshow(np.ma.masked_equal(extra, 0), cmap="viridis", alpha=0.35, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(VIEWS[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, suffix=".tmp") as tmp:  # not *.png while incomplete
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def training_curves(history, class_names, path, *, title: str = "") -> None:
    """Save the training loss and the validation Dice per class against the epoch (two panels).

    history: one dict per epoch with "epoch", "loss" and, if validated, "dice" ({label: Dice}, labels from 1);
    class_names: names of labels 0 .. C - 1 (label 0, the background, is not drawn). Written atomically.
    """
    epochs = [record["epoch"] for record in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [record["loss"] for record in history], marker=".")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (Dice + cross-entropy)")
    if history and "dice" in history[0]:
        for label in history[0]["dice"]:
            right.plot(epochs, [record["dice"][label] for record in history], marker=".",
                       label=class_names[int(label)])
        right.set_ylim(0, 1)
        right.legend(fontsize=7, loc="lower right")
    right.set_xlabel("epoch")
    right.set_ylabel("validation Dice")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(path, suffix=".tmp") as tmp:  # not *.png while incomplete
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
