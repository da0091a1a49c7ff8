"""Classifiers of the group models: one pipeline factory (scaling, then the estimator), and their metrics.

Every model is a scikit-learn Pipeline; a spy step in front (dlmi.analysis.validation.SubjectSpy) can record
which subjects each of its fits saw.
"""
from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

# name -> estimator given the seed; the config's grid (model.classifiers.<name>) names its parameters
ESTIMATORS = {
    "linear_svm": lambda seed: SVC(kernel="linear", C=1.0, random_state=seed),
    "l1_logistic_regression": lambda seed: LogisticRegression(
        l1_ratio=1.0, solver="liblinear", C=1.0, max_iter=10000, random_state=seed),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
}


def pipeline(model: str, seed: int, *, spy=None) -> Pipeline:
    """The model's Pipeline: ("scale", StandardScaler), ("estimator", ESTIMATORS[model]).

    spy: a pass-through transformer (dlmi.analysis.validation.SubjectSpy) put first, as step "spy": it sees
    the rows every fit of the pipeline is given and every row it scores.
    """
    steps = [("scale", StandardScaler()), ("estimator", ESTIMATORS[model](seed))]
    return Pipeline(([("spy", spy)] if spy is not None else []) + steps)


def grid_parameters(grid: dict[str, list]) -> dict[str, list]:
    """The config's grid of estimator parameters ({"C": [...]}) as Pipeline parameter names."""
    return {f"estimator__{name}": list(values) for name, values in grid.items()}


def decision_scores(fitted: Pipeline, features) -> np.ndarray:
    """Scores whose sign is the predicted class (> 0: positive): the decision function where the estimator
    has one, else the positive-class probability minus 1/2 (random forest)."""
    if hasattr(fitted, "decision_function"):
        return np.asarray(fitted.decision_function(features), float)
    return np.asarray(fitted.predict_proba(features)[:, 1], float) - 0.5


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Balanced accuracy, AUC, accuracy, sensitivity (positive=1 recall) and specificity (negative=0 recall)."""
    predicted = (np.asarray(scores) > 0).astype(int)
    return {
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "auc": roc_auc_score(labels, scores),
        "accuracy": accuracy_score(labels, predicted),
        "sensitivity": recall_score(labels, predicted, pos_label=1, zero_division=0.0),
        "specificity": recall_score(labels, predicted, pos_label=0, zero_division=0.0),
    }


METRICS = ("balanced_accuracy", "auc", "accuracy", "sensitivity", "specificity")


def bootstrap_cis(
    labels: np.ndarray, scores: np.ndarray, *, n_boot: int, level: float, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of every metric of `classification_metrics`, for fixed out-of-fold scores.

    Subjects are resampled with replacement within each class (stratified), so every resample keeps both
    classes at their observed sizes. The AUC of a resample is computed from the pairwise comparison matrix
    of the original positives and negatives (ties count 1/2), weighted by how often each subject was drawn:
    the Mann-Whitney form of the AUC, equal to scikit-learn's roc_auc_score on the resample.
    Returns metric -> (low, high) at the two-sided `level`.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n1, n0 = len(positives), len(negatives)
    draw1 = rng.integers(0, n1, (n_boot, n1))
    draw0 = rng.integers(0, n0, (n_boot, n0))
    correct = (scores > 0).astype(int) == labels
    sensitivity = correct[positives][draw1].mean(1)
    specificity = correct[negatives][draw0].mean(1)
    counts1 = np.stack([np.bincount(row, minlength=n1) for row in draw1])
    counts0 = np.stack([np.bincount(row, minlength=n0) for row in draw0])
    s1, s0 = scores[positives], scores[negatives]
    wins = (s1[:, None] > s0[None, :]) + 0.5 * (s1[:, None] == s0[None, :])
    auc = np.einsum("bi,ij,bj->b", counts1, wins, counts0) / (n1 * n0)
    estimates = {
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "auc": auc,
        "accuracy": (sensitivity * n1 + specificity * n0) / (n1 + n0),
        "sensitivity": sensitivity,
        "specificity": specificity,
    }
    alpha = (1 - level) / 2
    return {name: tuple(float(q) for q in np.quantile(values, [alpha, 1 - alpha]))
            for name, values in estimates.items()}


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve (scikit-learn)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr
