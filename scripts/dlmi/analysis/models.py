"""Group models with honest, subject-level cross-validation, scored with scikit-learn's metrics."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

CLASSIFIERS = {
    "linear_svm": lambda seed: SVC(kernel="linear", C=1.0, random_state=seed),
    "logistic_regression": lambda seed: LogisticRegression(C=1.0, max_iter=1000, random_state=seed),
}


def classifier(name: str, seed: int):
    """A scikit-learn Pipeline: scaling fit on the training fold only, then the classifier."""
    return make_pipeline(StandardScaler(), CLASSIFIERS[name](seed))


def cross_validated_scores(
    features: np.ndarray, labels: np.ndarray, model: str, *, folds: int, seed: int, repeats: int = 1
) -> np.ndarray:
    """Out-of-fold decision scores (N,) from repeated stratified k-fold CV.

    One row per subject, so folds split subjects: each subject is scored only by models that never saw it.
    With repeats > 1 the split is redrawn `repeats` times (seeds seed, seed + 1, ...) and each subject's
    out-of-fold scores are averaged, which removes the luck of one particular split (small cohorts).
    """
    labels = np.asarray(labels)
    folds = min(folds, int(np.bincount(labels).min()))
    if folds < 2:
        raise ValueError("each group needs at least 2 subjects for cross-validation")
    scores = np.zeros(len(labels))
    for repeat in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed + repeat)
        for train, test in splitter.split(features, labels):
            fitted = classifier(model, seed).fit(features[train], labels[train])
            scores[test] += fitted.decision_function(features[test]) / repeats
    return scores


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Balanced accuracy, AUC, accuracy, sensitivity (AD=1 recall) and specificity (CN=0 recall)."""
    predicted = (scores > 0).astype(int)
    return {
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "auc": roc_auc_score(labels, scores),
        "accuracy": accuracy_score(labels, predicted),
        "sensitivity": recall_score(labels, predicted, pos_label=1),
        "specificity": recall_score(labels, predicted, pos_label=0),
    }


def balanced_accuracy_ci(
    labels: np.ndarray, predicted: np.ndarray, *, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of the balanced accuracy of fixed out-of-fold predictions.

    Subjects are resampled with replacement within each group (stratified), so every resample has both
    groups at their observed sizes. Returns (low, high) at the given two-sided `level`.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == g) for g in (0, 1)]
    correct = labels == predicted
    recalls = [correct[idx][rng.integers(0, len(idx), (n_boot, len(idx)))].mean(1) for idx in groups]
    estimates = (recalls[0] + recalls[1]) / 2
    alpha = (1 - level) / 2
    low, high = np.quantile(estimates, [alpha, 1 - alpha])
    return float(low), float(high)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve (scikit-learn)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr
