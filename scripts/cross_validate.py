"""Rule cross_validate: one (task, classifier, feature set) by nested cross-validation on the task's fixed
splits: out-of-fold scores, every metric with a bootstrap CI, and a label-permutation p-value. The feature
set's columns come from the features table (or, for an image feature set, the gathered images), its clinical
variables from participants.tsv (dlmi.analysis.design), and its SVM scores are computed inside every training
fold."""
from dlmi import io
from dlmi.analysis import models, validation
from dlmi_workflow import runlog


def main(features_path, participants_tsv, participants_schema: dict, splits_tsv, metrics_tsv, predictions_tsv,
         params: dict, seed: int, log=None, factory=models.pipeline):
    logger = runlog.start(log, "cross_validate")
    features, labels, splits, _ = validation.job_data(features_path, participants_tsv, participants_schema,
                                                      splits_tsv, params)
    logger.info("%s", validation.describe_job(params, labels, splits))
    metrics, predictions = validation.evaluate(features, labels, splits, params, seed, factory)
    io.write_tsv(predictions_tsv, predictions)
    io.write_tsv(metrics_tsv, metrics)
    logger.info("\n%s", metrics.T.to_string(header=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(sm.input.features, sm.input.participants, sm.params.participants_schema, sm.input.splits,
             sm.output.metrics, sm.output.predictions, sm.params.validation, sm.params.seed, sm.log[0])
    runlog.finish(sm)
