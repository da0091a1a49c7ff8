"""Rules gather_features and gather_quality: concatenate per-subject tables into group tables.

Each named input (a list of per-subject TSVs) becomes the output of the same name.
"""
import pandas as pd

from dlmi import io
from dlmi_workflow import runlog


def main(inputs: dict, outputs: dict, log=None):
    logger = runlog.start(log, "gather_tables")
    for name, paths in inputs.items():
        table = pd.concat([pd.read_csv(p, sep="\t", dtype={"participant_id": str}) for p in paths])
        io.write_tsv(outputs[name], table)
        logger.info("%s: %d rows from %d files", name, len(table), len(paths))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main({k: list(v) for k, v in sm.input.items()}, dict(sm.output.items()), sm.log[0])
    runlog.finish(sm)
