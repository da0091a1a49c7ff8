"""Rule cross_validate: one (task, model, feature set) by nested cross-validation on the task's fixed
splits: out-of-fold scores, every metric with a bootstrap CI, and a label-permutation p-value. The feature
set's columns come from the features table, its clinical variables from participants.tsv
(dlmi.analysis.design), and its SVM scores are computed inside every training fold."""
from collections import Counter

import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import design, models, tasks, validation
from dlmi.sim import cohort
from dlmi_workflow import runlog


def check_features(path, features: pd.DataFrame, columns: list[str], feature_set: str) -> None:
    """Raise InputError naming `path` (the features table, read as `features`) unless it has a participant_id
    column and the feature `columns` (of `feature_set`), each holding a finite number for every participant
    (not empty, n/a, text or inf). Lines are numbered as in the file (the header is line 1)."""
    missing = [c for c in ["participant_id", *columns] if c not in features.columns]
    if missing:
        raise io.InputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                            + ", ".join(repr(c) for c in missing)
                            + f" (feature set {feature_set!r}: config key model.feature_sets)")
    values = features[columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise io.InputError(f"{path}: line {row + 2} ({features['participant_id'].iloc[row]}): missing feature "
                            f"value in column {columns[column]!r} ({int(bad.sum())} of {bad.size} values missing "
                            "or not finite)")


def describe_choices(chosen: list[dict]) -> str:
    """The hyperparameters chosen across the outer folds, most frequent first: "C=0.1 (31/50), C=1 (19/50)"."""
    counts = Counter(", ".join(f"{k.removeprefix('estimator__')}={v}" for k, v in sorted(c.items())) for c in chosen)
    return "; ".join(f"{choice or 'fixed'} ({n}/{len(chosen)})" for choice, n in counts.most_common())


def job_factory(factory, columns: list[str], params: dict):
    """`factory` building the job's pipelines on a design matrix with `columns`: with the feature set's SVM
    scores (params["scores"]) as a pipeline step in front of the model, fit inside each training fold."""
    scores = params.get("scores") or {}
    if not scores:
        return factory
    kept = [columns.index(c) for c in params["columns"] if not c.startswith(design.SCORE_PREFIX)]
    groups = [[columns.index(c) for c in inputs] for inputs in scores.values()]
    return lambda model, seed: factory(model, seed, scores=(kept, groups), score_folds=params["inner_folds"])


def evaluate(features: pd.DataFrame, labels: pd.Series, splits: pd.DataFrame, params: dict, seed: int,
             factory=models.pipeline):
    """(metrics row, predictions table) of params["model"] on the design matrix `features` (rows indexed by
    participant_id, in the order of `labels`; columns as design.matrix_columns gives them).

    factory: the pipeline factory (models.pipeline; a test passes one with a spy)."""
    model, grid = params["model"], params["grid"]
    factory = job_factory(factory, list(features.columns), params)
    x, y, ids = features.to_numpy(float), labels.to_numpy(int), list(labels.index)
    scores, per_repeat, chosen = validation.cross_validated_scores(
        x, y, ids, splits, model, grid, inner_folds=params["inner_folds"], seed=seed, factory=factory)
    metrics = models.classification_metrics(y, scores)
    cis = models.bootstrap_cis(y, scores, n_boot=params["bootstrap"], level=params["ci_level"], seed=seed)
    row = {"task": params["task"], "model": model, "features": params["features"], "n": len(y),
           "n_positive": int(y.sum())}
    for name in models.METRICS:
        row |= {name: metrics[name], f"{name}_ci_low": cis[name][0], f"{name}_ci_high": cis[name][1]}
    observed = validation.balanced_accuracy(y, per_repeat[:, 0])
    p = np.nan
    if params["permutations"]:
        p, _ = validation.permutation_p_value(
            x, y, observed, model, grid, folds=params["cv_folds"], inner_folds=params["inner_folds"],
            permutations=params["permutations"], seed=seed, factory=factory)
    row |= {"balanced_accuracy_repeat0": observed, "p_permutation": p, "permutations": params["permutations"],
            "hyperparameters": describe_choices(chosen)}
    predictions = pd.DataFrame({"participant_id": ids, "task": params["task"], "model": model,
                                "features": params["features"], "label": y, "score": scores})
    return pd.DataFrame([row]), predictions


def design_matrix(features_tsv, participants_tsv, participants_schema: dict, splits_tsv, subjects: list[str],
                  params: dict) -> tuple[pd.DataFrame, pd.Series]:
    """The job's design matrix (rows: the task's `subjects`, those of `splits_tsv`, indexed by participant_id;
    columns: design.matrix_columns) and its labels, each input checked with its file named."""
    task, feature_set = params["task"], params["features"]
    columns = design.matrix_columns(params["columns"], params.get("scores") or {})
    label_column = tasks.TASKS[task]["column"]
    if label_column in columns:
        raise io.InputError(f"feature set {feature_set!r} (config key model.feature_sets) holds {label_column!r}, "
                            f"the label of task {task}")
    clinical = design.clinical_columns(columns)
    imaging = [c for c in columns if c not in clinical]
    table = pd.read_csv(features_tsv, sep="\t", dtype={"participant_id": str})
    check_features(features_tsv, table, imaging, feature_set)
    absent = [s for s in subjects if s not in set(table["participant_id"])]
    if absent:
        raise io.InputError(f"{features_tsv}: no row for {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}"
                            f" (task {task}, {splits_tsv})")
    participants = cohort.read_participants(participants_tsv, subjects, participants_schema)
    participants = participants[participants.participant_id.isin(subjects)].reset_index(drop=True)
    labels = tasks.task_labels(participants, task, participants_tsv)
    values = design.clinical_table(participants, clinical)
    check_features(participants_tsv, values, clinical, feature_set)
    merged = table[["participant_id", *imaging]].merge(values, on="participant_id", how="inner")
    return merged.set_index("participant_id").loc[labels.index, columns].astype(float), labels


def main(features_tsv, participants_tsv, participants_schema: dict, splits_tsv, metrics_tsv, predictions_tsv,
         params: dict, seed: int, log=None, factory=models.pipeline):
    logger = runlog.start(log, "cross_validate")
    splits = pd.read_csv(splits_tsv, sep="\t", dtype={"participant_id": str})
    subjects = list(dict.fromkeys(splits.participant_id))  # the task's subjects, as make_splits chose them
    features, labels = design_matrix(features_tsv, participants_tsv, participants_schema, splits_tsv, subjects,
                                     params)
    validation.check_splits(splits, labels.index, splits_tsv)
    logger.info("task %s, model %s, features %s (%s): %d subjects, %d repeats x %d folds, %d permutations",
                params["task"], params["model"], params["features"], ", ".join(params["columns"]), len(labels),
                splits.repeat.nunique(), splits.fold.nunique(), params["permutations"])
    metrics, predictions = evaluate(features, labels, splits, params, seed, factory)
    io.write_tsv(predictions_tsv, predictions)
    io.write_tsv(metrics_tsv, metrics)
    logger.info("\n%s", metrics.T.to_string(header=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(sm.input.features, sm.input.participants, sm.params.participants_schema, sm.input.splits,
             sm.output.metrics, sm.output.predictions, sm.params.validation, sm.params.seed, sm.log[0])
    runlog.finish(sm)
