"""Classifiers of the group models: one pipeline factory (scaling, then the estimator), and their metrics.

Every model is a scikit-learn Pipeline; a spy step in front (dlmi.analysis.validation.SubjectSpy) can record
which subjects each of its fits saw. A pipeline may turn groups of columns into out-of-fold linear-SVM scores
first (`SvmScores`), whose inner pipelines come from the same factory, spy included.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from dlmi.io import InputError

# name -> estimator given the seed; the config's grid (model.classifiers.<name>) names its parameters
ESTIMATORS = {
    "linear_svm": lambda seed: SVC(kernel="linear", C=1.0, random_state=seed),
    "l1_logistic_regression": lambda seed: LogisticRegression(
        l1_ratio=1.0, solver="liblinear", C=1.0, max_iter=10000, random_state=seed),
    "random_forest": lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
}


def pipeline(model: str, seed: int, *, spy=None, columns=None, scores=None, score_folds: int = 3) -> Pipeline:
    """The model's Pipeline: ("scale", StandardScaler), ("estimator", ESTIMATORS[model]), with in front:

    spy: a pass-through transformer (dlmi.analysis.validation.SubjectSpy) put first, as step "spy": it sees
        the rows every fit of the pipeline is given and every row it scores;
    columns: positions of the input columns the model reads (step "select"); None: all;
    scores: (kept positions, [positions of each score's columns]): step "scores", an `SvmScores` that keeps
        those columns and adds one out-of-fold linear-SVM score per group (its inner pipelines are this
        function's, with the same spy, so that the spy sees their fits too), `score_folds` inner folds.
    """
    steps = [("spy", spy)] if spy is not None else []
    if columns is not None:
        steps.append(("select", SelectColumns(list(columns))))
    if scores is not None:
        kept, groups = scores
        steps.append(("scores", SvmScores(list(kept), [list(g) for g in groups], folds=score_folds, seed=seed,
                                          spy=spy)))
    steps += [("scale", StandardScaler()), ("estimator", ESTIMATORS[model](seed))]
    return Pipeline(steps)


def inner_fold_count(labels: np.ndarray, folds: int, purpose: str, key: str) -> int:
    """The folds of an inner stratified split of a training fold: `folds`, or fewer where the smaller class
    has fewer subjects. Raises InputError (naming `purpose` and the config `key` besides the fold counts)
    where the smaller class has fewer than 2."""
    smaller = int(min(np.sum(labels == 0), np.sum(labels == 1)))
    if min(folds, smaller) < 2:
        raise InputError(f"a training fold has {smaller} subject(s) in its smaller class: too few {purpose} "
                         f"(config keys model.cv_folds, model.inner_folds, {key})")
    return min(folds, smaller)


class SelectColumns(TransformerMixin, BaseEstimator):
    """Keep the columns at `positions` (a stateless pipeline step)."""

    def __init__(self, positions: list[int]):
        self.positions = positions

    def fit(self, features, labels=None):
        return self

    def transform(self, features):
        return np.asarray(features)[:, self.positions]


class SvmScores(TransformerMixin, BaseEstimator):
    """The columns at `kept`, then one linear-SVM decision value per group of column positions in `groups`:
    the course's "imaging score" beside the clinical variables.

    fit_transform (what a Pipeline's fit calls) gives each training row its out-of-fold score: a stratified
    `folds`-fold split of the rows it is given (random_state `seed`), each fold scored by an SVM fit on the
    others, so the model after it learns from scores of subjects the SVM did not see, as a test subject's
    will be. fit then refits each SVM on all the rows it is given, for transform to score new rows. Each SVM is
    `pipeline("linear_svm", seed, spy=spy, columns=group)`: scaled, C = 1, behind the same spy.
    """

    def __init__(self, kept: list[int], groups: list[list[int]], *, folds: int = 3, seed: int = 0, spy=None):
        self.kept = kept
        self.groups = groups
        self.folds = folds
        self.seed = seed
        self.spy = spy

    def _svm(self, group):
        return pipeline("linear_svm", self.seed, spy=self.spy, columns=group)

    def fit(self, features, labels):
        self.svms_ = [self._svm(group).fit(features, labels) for group in self.groups]
        return self

    def transform(self, features):
        scores = [decision_scores(svm, features) for svm in self.svms_]
        return np.column_stack([np.asarray(features, float)[:, self.kept], *scores])

    def fit_transform(self, features, labels=None):
        features, labels = np.asarray(features, float), np.asarray(labels)
        folds = inner_fold_count(labels, self.folds, "for the out-of-fold SVM scores", "model.feature_sets")
        scores = np.zeros((len(labels), len(self.groups)))
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        for train, held_out in splitter.split(features, labels):
            for k, group in enumerate(self.groups):
                svm = self._svm(group).fit(features[train], labels[train])
                scores[held_out, k] = decision_scores(svm, features[held_out])
        self.fit(features, labels)
        return np.column_stack([features[:, self.kept], scores])


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
