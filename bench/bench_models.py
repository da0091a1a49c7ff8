"""Benchmark: the model stage's nested cross-validation (dlmi.analysis.validation.nested_cv_scores) against
scikit-learn's own nesting (GridSearchCV inside cross_val_predict) on the same folds, grid and data.

The workload is what a cross_validate job repeats for its permutation test: 20 nested 5-fold CVs (3-point
grid, 3 inner folds) of 20 subjects x 5 features, each on labels permuted as the job permutes them. Quality:
the balanced accuracy of the out-of-fold predictions on the true labels, which must be equal (the same
algorithm). CPU only: the classifiers are scikit-learn's. Run alone with `python bench/bench_models.py`.
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, PredefinedSplit, StratifiedKFold, cross_val_predict

from dlmi.analysis import models, validation

GRIDS = {"linear_svm": {"C": [0.01, 0.1, 1.0]}, "l1_logistic_regression": {"C": [0.1, 1.0, 10.0]}}
N_SUBJECTS, N_FEATURES, PERMUTATIONS, FOLDS, INNER = 20, 5, 20, 5, 3


def cohort(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], N_SUBJECTS // 2)
    features = rng.normal(size=(N_SUBJECTS, N_FEATURES))
    features[:, :2] += labels[:, None]  # two informative features, one SD
    return features, labels


def label_sets(labels: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [labels] + [rng.permutation(labels) for _ in range(PERMUTATIONS - 1)]


def ours(features, labels, model):
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(features, labels))
    return validation.nested_cv_scores(features, labels, folds, model, GRIDS[model], inner_folds=INNER, seed=0)[0]


def peer(features, labels, model):
    test = np.empty(len(labels), int)
    for fold, (_, held_out) in enumerate(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(features, labels)):
        test[held_out] = fold
    search = GridSearchCV(models.pipeline(model, 0), models.grid_parameters(GRIDS[model]),
                          scoring="balanced_accuracy", cv=StratifiedKFold(INNER, shuffle=True, random_state=0))
    return cross_val_predict(search, features, labels, cv=PredefinedSplit(test), method="decision_function")


def rows(device: str) -> list[dict]:
    if device != "cpu":
        return []
    features, labels = cohort()
    result = []
    for model in GRIDS:
        timings, scores = {}, {}
        for name, run in (("ours", ours), ("peer", peer)):
            start = time.perf_counter()
            runs = [run(features, y, model) for y in label_sets(labels)]
            timings[name] = time.perf_counter() - start
            scores[name] = runs[0]  # the true labels
        result.append({
            "name": f"nested CV {model}, {PERMUTATIONS} x {FOLDS}-fold, {N_SUBJECTS} subjects",
            "ours_s": timings["ours"], "peer": "sklearn GridSearchCV in cross_val_predict", "peer_s": timings["peer"],
            "ours_quality": balanced_accuracy_score(labels, scores["ours"] > 0),
            "peer_quality": balanced_accuracy_score(labels, scores["peer"] > 0),
            "quality_name": "balanced accuracy (true labels)",
        })
    return result


if __name__ == "__main__":
    for row in rows("cpu"):
        print(row)
