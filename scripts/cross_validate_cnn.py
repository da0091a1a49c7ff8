"""Rule cross_validate_cnn: a 3D CNN (dlmi.analysis.cnn) on one image feature set of one task, scored as
cross_validate scores the classical models (the same splits, metrics, CIs and tables), on CUDA when the
config's device allows. Each fit logs its epochs' training and validation losses."""
from functools import partial

from dlmi import io
from dlmi.analysis import cnn, validation
from dlmi.device import pick_device, set_threads
from dlmi_workflow import runlog


def main(images_npz, participants_tsv, participants_schema: dict, splits_tsv, metrics_tsv, predictions_tsv,
         params: dict, seed: int, device="auto", threads=1, log=None, factory=cnn.pipeline):
    logger = runlog.start(log, "cross_validate_cnn")
    set_threads(threads)
    features, labels, splits, shape = validation.job_data(images_npz, participants_tsv, participants_schema,
                                                          splits_tsv, params)
    dev = pick_device(device)
    logger.info("%s; images %s on %s", validation.describe_job(params, labels, splits), shape, dev)
    metrics, predictions = validation.evaluate(features, labels, splits, params, seed,
                                               partial(factory, image_shape=shape, device=str(dev)))
    io.write_tsv(predictions_tsv, predictions)
    io.write_tsv(metrics_tsv, metrics)
    logger.info("\n%s", metrics.T.to_string(header=False))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(sm.input.features, sm.input.participants, sm.params.participants_schema, sm.input.splits,
             sm.output.metrics, sm.output.predictions, sm.params.validation, sm.params.seed, sm.config["device"],
             sm.threads, sm.log[0])
    runlog.finish(sm)
