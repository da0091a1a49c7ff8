"""Leakage-free validation of the group models: fixed subject-level splits, nested cross-validation,
label-permutation p-values, and a spy that records which subjects every fit saw.

The splits of a task are drawn once per study (`stratified_splits`, saved as the task's splits.tsv) and
every model of the task is scored on the same folds. Inside each outer training fold the hyperparameters are
chosen by an inner stratified CV on the training subjects only (as scikit-learn's GridSearchCV would), and the
chosen model, refit on the whole training fold, scores the test fold. Scaling is a pipeline step, so it is
fit inside every training fold too. Features are numpy arrays (subjects x features) in the order of the
task's participant_ids; folds are positions into them.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import ParameterGrid, StratifiedKFold

from dlmi.analysis import design, models
from dlmi.io import InputError


def stratified_splits(labels: pd.Series, *, folds: int, repeats: int, seed: int) -> pd.DataFrame:
    """Repeated stratified k-fold splits of the subjects of `labels` (indexed by participant_id).

    Long format, one row per (repeat, fold, subject): columns repeat, fold, participant_id, set ("train" or
    "test"). Repeat r is scikit-learn's StratifiedKFold(folds, shuffle=True, random_state=seed + r).
    """
    ids = labels.index.to_numpy()
    rows = []
    for repeat in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(splitter.split(ids, labels.to_numpy())):
            rows += [(repeat, fold, ids[k], "train") for k in train]
            rows += [(repeat, fold, ids[k], "test") for k in test]
    return pd.DataFrame(rows, columns=["repeat", "fold", "participant_id", "set"])


def check_splits(splits: pd.DataFrame, participant_ids, path) -> None:
    """Raise InputError naming `path` unless, in every repeat, each fold's train and test sets are disjoint
    and cover exactly `participant_ids`, and each subject is tested in exactly one fold."""
    expected = set(participant_ids)
    missing = [c for c in ("repeat", "fold", "participant_id", "set") if c not in splits.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    for repeat, part in splits.groupby("repeat"):
        tested: list[str] = []
        for fold, rows in part.groupby("fold"):
            train = set(rows.participant_id[rows.set == "train"])
            test = set(rows.participant_id[rows.set == "test"])
            both = sorted(train & test)
            if both:
                raise InputError(f"{path}: repeat {repeat}, fold {fold}: {', '.join(both)} in both train and test")
            if train | test != expected:
                odd = sorted((train | test) ^ expected)
                raise InputError(f"{path}: repeat {repeat}, fold {fold}: the subjects differ from the task's "
                                 f"({', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''})")
            tested += sorted(test)
        if len(tested) != len(set(tested)) or set(tested) != expected:
            raise InputError(f"{path}: repeat {repeat}: not every subject is tested exactly once")


def folds_of(splits: pd.DataFrame, repeat: int, ids) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions into `ids` (the participant_ids in the order of the feature rows) of each fold
    of one repeat, in fold order."""
    position = {participant: k for k, participant in enumerate(ids)}
    part = splits[splits.repeat == repeat]
    return [tuple(np.array([position[p] for p in rows.participant_id[rows.set == role]], dtype=int)
                  for role in ("train", "test"))
            for _, rows in part.groupby("fold")]


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Balanced accuracy of the predictions scores > 0 (the mean of the two classes' recalls)."""
    predicted = scores > 0
    positive = labels == 1
    return float((predicted[positive].mean() + (~predicted[~positive]).mean()) / 2)


def fit_tuned(features: np.ndarray, labels: np.ndarray, model: str, grid: dict, *, inner_folds: int, seed: int,
              factory: Callable = models.pipeline):
    """The model fit on (features, labels), its hyperparameters chosen by a stratified inner CV.

    Each grid point is scored by its mean balanced accuracy over the inner folds (the first best point in
    scikit-learn's ParameterGrid order wins ties), then the pipeline with the best point is refit on all of
    (features, labels): what GridSearchCV(scoring="balanced_accuracy", cv=StratifiedKFold(inner_folds,
    shuffle=True, random_state=seed)) does, and a test holds the two equal. The steps before the estimator do
    not depend on its parameters, so they are fit once per inner fold, not once per grid point. A grid with
    a single point is fit directly. Returns (fitted pipeline, chosen parameters).
    """
    points = list(ParameterGrid(models.grid_parameters(grid)))
    if len(points) == 1:
        return factory(model, seed).set_params(**points[0]).fit(features, labels), points[0]
    folds = models.inner_fold_count(labels, inner_folds, "to tune the hyperparameters", "model.classifiers")
    scores = np.zeros(len(points))
    for train, validation in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        pipeline = factory(model, seed)
        # fit_transform, as the pipeline's own fit: a step may give its training rows other values than new
        # rows (out-of-fold scores, dlmi.analysis.models.SvmScores)
        preprocess = pipeline[:-1]
        seen = preprocess.fit_transform(features[train], labels[train])
        unseen = preprocess.transform(features[validation])
        estimator = pipeline.steps[-1][1]
        settings = estimator.get_params(deep=False)  # once: scikit-learn reads a signature per get_params
        for k, point in enumerate(points):
            chosen = {name.removeprefix("estimator__"): value for name, value in point.items()}
            fitted = type(estimator)(**(settings | chosen)).fit(seen, labels[train])
            scores[k] += balanced_accuracy(labels[validation], models.decision_scores(fitted, unseen))
    best = points[int(np.argmax(scores / folds))]
    return factory(model, seed).set_params(**best).fit(features, labels), best


def check_grid(model: str, grid: dict, factory: Callable = models.pipeline) -> None:
    """Raise InputError naming the config key unless every parameter of `grid` is one of the estimator's."""
    unknown = sorted(set(models.grid_parameters(grid)) - set(factory(model, 0).get_params()))
    if unknown:
        raise InputError(f"config key model.classifiers.{model}: {model} has no parameter "
                         f"{unknown[0].removeprefix('estimator__')!r}")


def nested_cv_scores(features: np.ndarray, labels: np.ndarray, folds, model: str, grid: dict, *, inner_folds: int,
                     seed: int, factory: Callable = models.pipeline) -> tuple[np.ndarray, list[dict]]:
    """Out-of-fold decision scores over the given outer (train, test) position folds, each from a model
    tuned and fit on that fold's training subjects only; and the parameters chosen in each fold."""
    scores = np.full(len(labels), np.nan)
    chosen = []
    for train, test in folds:
        fitted, parameters = fit_tuned(features[train], labels[train], model, grid, inner_folds=inner_folds,
                                       seed=seed, factory=factory)
        scores[test] = models.decision_scores(fitted, features[test])
        chosen.append(parameters)
    return scores, chosen


def cross_validated_scores(features: np.ndarray, labels: np.ndarray, ids, splits: pd.DataFrame, model: str,
                           grid: dict, *, inner_folds: int, seed: int, factory: Callable = models.pipeline,
                           repeats: int | None = None):
    """Each subject's out-of-fold score averaged over the repeats of `splits` (the split's luck averaged
    out), or over its first `repeats` of them, the per-repeat scores (subjects x repeats) and the parameters
    chosen in every fold. `ids`: the participant_ids of the rows of `features`."""
    check_grid(model, grid, factory)
    per_repeat, chosen = [], []
    for repeat in sorted(splits.repeat.unique())[:repeats]:
        scores, parameters = nested_cv_scores(features, labels, folds_of(splits, repeat, ids), model, grid,
                                              inner_folds=inner_folds, seed=seed, factory=factory)
        per_repeat.append(scores)
        chosen += parameters
    per_repeat = np.stack(per_repeat, axis=1)
    return per_repeat.mean(axis=1), per_repeat, chosen


def permutation_p_value(features: np.ndarray, labels: np.ndarray, observed: float, model: str, grid: dict, *,
                        folds: int, inner_folds: int, permutations: int, seed: int,
                        factory: Callable = models.pipeline):
    """Label-permutation p-value of the balanced accuracy of one nested-CV repeat.

    Each permutation shuffles the labels, draws fresh stratified splits of the shuffled labels (as the study's
    repeat 0 is drawn from the true ones) and reruns the whole nested CV, tuning included; the p-value is
    (1 + #{null >= observed}) / (1 + permutations). Returns (p, null balanced accuracies).
    """
    rng = np.random.default_rng(seed)
    null = np.empty(permutations)
    for k in range(permutations):
        shuffled = rng.permutation(labels)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed + 1 + k)
        scores, _ = nested_cv_scores(features, shuffled, list(splitter.split(features, shuffled)), model, grid,
                                     inner_folds=inner_folds, seed=seed, factory=factory)
        null[k] = balanced_accuracy(shuffled, scores)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + permutations)), null


# ---------------------------------------------------------------------------------------------------------
# one model job (rules cross_validate and cross_validate_cnn)


def job_data(features_path, participants_tsv, participants_schema: dict, splits_tsv, params: dict):
    """(design matrix, labels, splits, image shape or None) of one job: the task's subjects are those of its
    splits (as make_splits chose them), the design matrix and labels those of
    dlmi.analysis.design.design_matrix, and the splits are checked against the labels."""
    splits = pd.read_csv(splits_tsv, sep="\t", dtype={"participant_id": str})
    subjects = list(dict.fromkeys(splits.participant_id))
    features, labels, shape = design.design_matrix(features_path, participants_tsv, participants_schema,
                                                   splits_tsv, subjects, params)
    check_splits(splits, labels.index, splits_tsv)
    return features, labels, splits, shape


def describe_job(params: dict, labels: pd.Series, splits: pd.DataFrame) -> str:
    """One log line: the job, its subjects, folds and permutations."""
    repeats = min(splits.repeat.nunique(), params.get("repeats") or splits.repeat.nunique())
    return (f"task {params['task']}, model {params['model']}, features {params['features']} "
            f"({', '.join(params['columns'])}): {len(labels)} subjects, {repeats} repeats x "
            f"{splits.fold.nunique()} folds, {params['permutations']} permutations")


def describe_choices(chosen: list[dict]) -> str:
    """The hyperparameters chosen across the outer folds, most frequent first: "C=0.1 (31/50), C=1 (19/50)"."""
    counts = Counter(", ".join(f"{k.removeprefix('estimator__')}={v}" for k, v in sorted(c.items())) for c in chosen)
    return "; ".join(f"{choice or 'fixed'} ({n}/{len(chosen)})" for choice, n in counts.most_common())


def job_factory(factory: Callable, columns: list[str], params: dict) -> Callable:
    """`factory` building the job's pipelines on a design matrix with `columns`: with the feature set's SVM
    scores (params["scores"]) as a pipeline step in front of the model, fit inside each training fold."""
    scores = params.get("scores") or {}
    if not scores:
        return factory
    kept = [columns.index(c) for c in params["columns"] if not c.startswith(design.SCORE_PREFIX)]
    groups = [[columns.index(c) for c in inputs] for inputs in scores.values()]
    return lambda model, seed: factory(model, seed, scores=(kept, groups), score_folds=params["inner_folds"])


def evaluate(features: pd.DataFrame, labels: pd.Series, splits: pd.DataFrame, params: dict, seed: int,
             factory: Callable = models.pipeline) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics row, predictions table) of params["model"] on the design matrix `features` (rows indexed by
    participant_id, in the order of `labels`; columns as design.matrix_columns gives them, or an image's
    voxels): out-of-fold scores over the first params["repeats"] repeats of `splits` (all when absent or
    None), every metric with a bootstrap CI, and a label-permutation p-value when params["permutations"].

    factory: the pipeline factory (models.pipeline, or dlmi.analysis.cnn.pipeline bound to the image shape;
    a test passes one with a spy)."""
    model, grid = params["model"], params["grid"]
    factory = job_factory(factory, list(features.columns), params)
    x, y, ids = features.to_numpy(float), labels.to_numpy(int), list(labels.index)
    scores, per_repeat, chosen = cross_validated_scores(
        x, y, ids, splits, model, grid, inner_folds=params["inner_folds"], seed=seed, factory=factory,
        repeats=params.get("repeats"))
    metrics = models.classification_metrics(y, scores)
    cis = models.bootstrap_cis(y, scores, n_boot=params["bootstrap"], level=params["ci_level"], seed=seed)
    row = {"task": params["task"], "model": model, "features": params["features"], "n": len(y),
           "n_positive": int(y.sum())}
    for name in models.METRICS:
        row |= {name: metrics[name], f"{name}_ci_low": cis[name][0], f"{name}_ci_high": cis[name][1]}
    observed = balanced_accuracy(y, per_repeat[:, 0])
    p = np.nan
    if params["permutations"]:
        p, _ = permutation_p_value(
            x, y, observed, model, grid, folds=params["cv_folds"], inner_folds=params["inner_folds"],
            permutations=params["permutations"], seed=seed, factory=factory)
    row |= {"balanced_accuracy_repeat0": observed, "p_permutation": p, "permutations": params["permutations"],
            "repeats": per_repeat.shape[1], "hyperparameters": describe_choices(chosen)}
    predictions = pd.DataFrame({"participant_id": ids, "task": params["task"], "model": model,
                                "features": params["features"], "label": y, "score": scores})
    return pd.DataFrame([row]), predictions


# ---------------------------------------------------------------------------------------------------------
# the spy: which subjects did each fit see?


class SpyLog:
    """What the spies saw, in call order: (event "fit" or "transform", frozenset of subjects).

    A copy is the same log, so the spy of a cloned pipeline records here too."""

    def __init__(self):
        self.records: list[tuple[str, frozenset]] = []

    def __deepcopy__(self, memo):
        return self

    def record(self, event: str, subjects) -> None:
        self.records.append((event, frozenset(subjects)))


class SubjectSpy(TransformerMixin, BaseEstimator):
    """A pass-through first pipeline step recording into `log` (a SpyLog) the participants whose rows the
    pipeline is fit on and transforms (scores). `ids_by_row`: row bytes (float64) -> participant_id, of
    every subject (rows must be distinct)."""

    def __init__(self, log: SpyLog, ids_by_row: dict):
        self.log = log
        self.ids_by_row = ids_by_row

    def subjects(self, features) -> list[str]:
        return [self.ids_by_row[row.tobytes()] for row in np.ascontiguousarray(features, dtype=np.float64)]

    def fit(self, features, labels=None):
        self.log.record("fit", self.subjects(features))
        return self

    def transform(self, features):
        self.log.record("transform", self.subjects(features))
        return features


def spied(log: SpyLog, features: np.ndarray, ids, factory: Callable = models.pipeline) -> Callable:
    """`factory` with a SubjectSpy in front of every pipeline it builds, recording into `log`; `features`
    are every subject's rows and `ids` their participant_ids."""
    rows = np.ascontiguousarray(features, dtype=np.float64)
    ids_by_row = {row.tobytes(): participant for row, participant in zip(rows, ids)}
    if len(ids_by_row) < len(rows):
        raise ValueError("the spy needs distinct feature rows to tell the subjects apart")
    return lambda model, seed, **options: factory(model, seed, spy=SubjectSpy(log, ids_by_row), **options)


def leaked_fits(log: SpyLog, folds) -> list[tuple[int, list[str]]]:
    """Fits that saw a subject of the test fold they belong to: [(fold index, leaked subjects)].

    `folds` are the outer (train ids, test ids) folds in the order the CV ran them. A fold's block of
    records ends when the spy transforms exactly that fold's test set (its prediction). Within the block no
    fit may hold a test subject, and no transform either unless it is that prediction: the spy stands in
    front of the preprocessing, and the estimator is fit on rows the preprocessing transformed. A block that
    never ends (a fold never scored on its own) or a fit after the last block is reported too.
    """
    leaks, k = [], 0
    test = frozenset(folds[0][1]) if folds else frozenset()
    for event, subjects in log.records:
        if k >= len(folds):
            if event == "fit":
                leaks.append((k, sorted(subjects)))
        elif event == "transform" and subjects == test:
            k += 1
            test = frozenset(folds[k][1]) if k < len(folds) else frozenset()
        elif subjects & test:
            leaks.append((k, sorted(subjects & test)))
    if k < len(folds):
        leaks.append((k, sorted(test)))
    return leaks
