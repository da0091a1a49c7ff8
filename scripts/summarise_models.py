"""Rule summarise_models: the metrics of every (task, model, feature set) in one table laid out like the
course's (balanced accuracy, AUC, accuracy, sensitivity, specificity, each with its CI), the out-of-fold
predictions, ROC curves and confusion matrices."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import models
from dlmi_workflow import runlog


def save_figure(fig, path) -> None:
    with io.atomic_write(path, suffix=".tmp") as tmp:  # not *.png while incomplete
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_roc(predictions: pd.DataFrame, metrics: pd.DataFrame, path) -> None:
    """One panel per task: each (model, feature set)'s out-of-fold ROC curve with its AUC."""
    tasks = list(dict.fromkeys(metrics["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 5), squeeze=False)
    auc = metrics.set_index(["task", "model", "features"])["auc"]
    for ax, task in zip(axes[0], tasks):
        for (model, feature_set), part in predictions[predictions.task == task].groupby(["model", "features"],
                                                                                         sort=False):
            fpr, tpr = models.roc_points(part["label"].to_numpy(int), part["score"].to_numpy())
            ax.plot(fpr, tpr, label=f"{model} / {feature_set} (AUC {auc[(task, model, feature_set)]:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{task}: out-of-fold ROC")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(predictions: pd.DataFrame, path) -> None:
    """A confusion matrix (counts of subjects, true class by row) per (task, model, feature set)."""
    groups = list(predictions.groupby(["task", "model", "features"], sort=False))
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, ((task, model, feature_set), part) in zip(axes.flat, groups):
        truth, predicted = part["label"].to_numpy(int), (part["score"].to_numpy() > 0).astype(int)
        counts = np.array([[np.sum((truth == t) & (predicted == q)) for q in (0, 1)] for t in (0, 1)])
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, counts.max()))
        for t in (0, 1):
            for q in (0, 1):
                ax.text(q, t, str(counts[t, q]), ha="center", va="center", fontsize=11)
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["neg", "pos"], yticklabels=["neg", "pos"],
               xlabel="predicted", ylabel="true")
        ax.set_title(f"{task}\n{model} / {feature_set}", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(metrics_tsvs, predictions_tsvs, metrics_tsv, predictions_tsv, roc_png, confusion_png, log=None):
    logger = runlog.start(log, "summarise_models")
    metrics = pd.concat([pd.read_csv(p, sep="\t") for p in metrics_tsvs], ignore_index=True)
    predictions = pd.concat([pd.read_csv(p, sep="\t", dtype={"participant_id": str}) for p in predictions_tsvs],
                            ignore_index=True)
    io.write_tsv(metrics_tsv, metrics)
    io.write_tsv(predictions_tsv, predictions)
    plot_roc(predictions, metrics, roc_png)
    plot_confusion(predictions, confusion_png)
    shown = ["task", "model", "features", "balanced_accuracy", "balanced_accuracy_ci_low", "auc", "accuracy",
             "sensitivity", "specificity", "p_permutation"]
    logger.info("\n%s", metrics[shown].to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(sm.input.metrics, sm.input.predictions, sm.output.metrics, sm.output.predictions, sm.output.roc,
             sm.output.confusion, sm.log[0])
    runlog.finish(sm)
