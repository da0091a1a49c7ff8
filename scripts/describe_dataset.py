"""Rule describe_dataset: dataset_description.json of the output folder (a BIDS derivative dataset)."""
from pathlib import Path

from dlmi import io
from dlmi_workflow import provenance, runlog


def main(description_path, root, links=None, log=None):
    """links: DatasetLinks, name -> location (a BIDS study's input dataset as "raw")."""
    logger = runlog.start(log, "describe_dataset")
    version = provenance.code_version(root)
    io.write_json(description_path, provenance.dataset_description(version, provenance.git_remote_url(root),
                                                                   links=links))
    logger.info("%s: dlmi-workflow %s", description_path, version)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.output.description, Path(sm.scriptdir).resolve().parent, sm.params.get("links"), sm.log[0])
    runlog.finish(sm)
