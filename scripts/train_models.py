"""Rule train_models: AD vs CN classifiers on each feature set, out-of-fold metrics, CI and ROC curves."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import models
from dlmi.sim import cohort
from dlmi_workflow import runlog


def evaluate(table: pd.DataFrame, params: dict, seed: int):
    """Metrics rows and out-of-fold predictions for every (classifier, feature set of params["feature_sets"])."""
    labels = (table["group"] == "AD").to_numpy(int)
    rows, predictions = [], []
    for model in models.CLASSIFIERS:
        for feature_set, columns in params["feature_sets"].items():
            scores = models.cross_validated_scores(
                table[columns].to_numpy(float), labels, model, folds=params["cv_folds"], seed=seed,
                repeats=params["cv_repeats"],
            )
            metrics = models.classification_metrics(labels, scores)
            low, high = models.balanced_accuracy_ci(
                labels, (scores > 0).astype(int), n_boot=params["bootstrap"], level=params["ci_level"], seed=seed
            )
            rows.append({"model": model, "features": feature_set, **metrics, "ci_low": low, "ci_high": high})
            predictions.append(
                pd.DataFrame(
                    {"participant_id": table["participant_id"], "model": model, "features": feature_set,
                     "group": table["group"], "score": scores}
                )
            )
    return pd.DataFrame(rows), pd.concat(predictions)


def plot_roc(predictions: pd.DataFrame, metrics: pd.DataFrame, path):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (model, feature_set), part in predictions.groupby(["model", "features"], sort=False):
        fpr, tpr = models.roc_points((part["group"] == "AD").to_numpy(int), part["score"].to_numpy())
        auc = metrics.set_index(["model", "features"]).loc[(model, feature_set), "auc"]
        ax.plot(fpr, tpr, label=f"{model} / {feature_set} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="AD vs CN, out-of-fold ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with io.atomic_write(path, suffix=".tmp") as tmp:  # not *.png while incomplete
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def check_features(path, features: pd.DataFrame, columns: list[str]) -> None:
    """Raise InputError naming `path` (the features table, read as `features`) unless it has a participant_id
    column and the feature `columns`, each holding a finite number for every participant (not empty, n/a,
    text or inf). Lines are numbered as in the file (the header is line 1)."""
    missing = [c for c in ["participant_id", *columns] if c not in features.columns]
    if missing:
        raise io.InputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                            + ", ".join(repr(c) for c in missing) + " (feature sets: config key model.feature_sets)")
    values = features[columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise io.InputError(f"{path}: line {row + 2} ({features['participant_id'].iloc[row]}): missing feature "
                            f"value in column {columns[column]!r} ({int(bad.sum())} of {bad.size} values missing "
                            "or not finite)")


def main(features_tsv, participants_tsv, participants_schema: dict, metrics_tsv, predictions_tsv, roc_png, params,
         seed, log=None):
    logger = runlog.start(log, "train_models")
    features = pd.read_csv(features_tsv, sep="\t", dtype={"participant_id": str})
    columns = list(dict.fromkeys(c for names in params["feature_sets"].values() for c in names))
    check_features(features_tsv, features, columns)
    participants = cohort.read_participants(participants_tsv, list(features["participant_id"]), participants_schema)
    table = features.merge(participants[["participant_id", "group"]], on="participant_id", validate="1:1")
    metrics, predictions = evaluate(table, params, seed)
    io.write_tsv(metrics_tsv, metrics)
    io.write_tsv(predictions_tsv, predictions)
    plot_roc(predictions, metrics, roc_png)
    logger.info("\n%s", metrics.to_string(index=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.features, sm.input.participants, sm.params.participants_schema, sm.output.metrics,
             sm.output.predictions, sm.output.roc, sm.params.model, sm.params.seed, sm.log[0])
    runlog.finish(sm)
