"""Benchmark: the CNN of rule cross_validate_cnn (dlmi.analysis.cnn) against a voxel-wise linear SVM
(scikit-learn, the course's "SVM, T1w" model) on the same images and the same 5 folds.

The images: nilearn's MNI152 template (shipped with nilearn) on the model grid at 4 mm (dlmi.analysis.images),
20 subjects, each with its own intensity gain, a shift of up to one voxel and noise; half of them lose 15 % of
the intensity in a medial temporal block on both sides (an atrophy-like darkening). Each time is one 5-fold
cross-validation with the rule's default settings (the CNN's 40 epochs with early stopping; the SVM at C = 1
behind a StandardScaler); quality: the out-of-fold balanced accuracy. The CNN runs on the row's device, the
SVM on the CPU. Run alone with `python bench/bench_cnn.py`.
"""
from __future__ import annotations

import time

import numpy as np
from nilearn.datasets import load_mni152_template
from sklearn.model_selection import StratifiedKFold

from dlmi.analysis import cnn, images, models, validation

N_SUBJECTS, FOLDS, VOXEL_MM = 20, 5, 4.0


def cohort(seed: int = 0):
    """(rows: subjects x voxels, labels, image shape)."""
    template = load_mni152_template(resolution=2)
    data, affine = template.get_fdata().astype(np.float32), template.affine
    shape, grid = images.model_grid(data > 0.2 * data.max(), affine, VOXEL_MM)
    base = images.to_model_grid(data, affine, np.eye(4), shape, grid)
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], N_SUBJECTS // 2)
    centre = np.array(shape) // 2
    rows = []
    for label in labels:
        image = base * rng.uniform(0.8, 1.2)
        image = np.roll(image, rng.integers(-1, 2, 3), axis=(0, 1, 2))
        if label:
            for side in (-1, 1):  # medial temporal blocks, 6 voxels (24 mm) either side of the midline
                x = centre[0] + side * 6
                image[x - 2:x + 3, centre[1] - 3:centre[1] + 3, centre[2] - 6:centre[2] - 1] *= 0.85
        image = image + rng.normal(scale=0.05 * base.max(), size=shape)
        rows.append(image.ravel())
    return np.stack(rows).astype(np.float32), labels, shape


def cross_validated(features, labels, build) -> tuple[float, float]:
    """(seconds, out-of-fold balanced accuracy) of one 5-fold CV of the pipelines `build()` makes."""
    scores = np.zeros(len(labels))
    start = time.perf_counter()
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(features, labels):
        scores[test] = models.decision_scores(build().fit(features[train], labels[train]), features[test])
    return time.perf_counter() - start, validation.balanced_accuracy(labels, scores)


def rows(device: str) -> list[dict]:
    features, labels, shape = cohort()
    ours_s, ours_ba = cross_validated(features, labels,
                                      lambda: cnn.pipeline("cnn", 0, image_shape=shape, device=device))
    peer_s, peer_ba = cross_validated(features.astype(np.float64), labels,
                                      lambda: models.pipeline("linear_svm", 0))
    return [{
        "name": f"CNN {FOLDS}-fold CV, {N_SUBJECTS} images {'x'.join(map(str, shape))} at {VOXEL_MM:g} mm",
        "ours_s": ours_s, "peer": "voxel-wise linear SVM (sklearn), CPU", "peer_s": peer_s,
        "ours_quality": ours_ba, "peer_quality": peer_ba, "quality_name": "balanced accuracy (out of fold)",
    }]


if __name__ == "__main__":
    for row in rows("cpu"):
        print(row)
