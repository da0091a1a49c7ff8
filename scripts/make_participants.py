"""Rule make_participants: the study's participants.tsv, the truth of a simulated cohort (group, age, sex,
score) or, in a BIDS study, each subject's group as mapped from the dataset's diagnosis column."""
import pandas as pd

from dlmi import io
from dlmi.sim import cohort
from dlmi_workflow import runlog

BIDS_COLUMNS = {key: cohort.PARTICIPANTS_JSON[key] for key in ("participant_id", "group")}


def main(tsv, sidecar, subjects, cohort_params=None, effects=None, groups=None, log=None):
    """groups: subject label -> "CN"/"AD" (a BIDS study; its table has participant_id and group), else the
    simulated cohort of `cohort_params` and `effects` over `subjects`."""
    logger = runlog.start(log, "make_participants")
    if groups is None:
        table = cohort.participants_table(cohort.Cohort.from_config(cohort_params, effects), subjects)
        description = cohort.PARTICIPANTS_JSON
    else:
        table = pd.DataFrame({"participant_id": [f"sub-{s}" for s in groups], "group": list(groups.values())})
        description = {**BIDS_COLUMNS, "group": {**BIDS_COLUMNS["group"], "Description": "Diagnostic group "
                                                  "(from the dataset's participants.tsv, config input.diagnosis)"}}
    io.write_tsv(tsv, table)
    io.write_json(sidecar, description)
    logger.info("%d participants, %d AD", len(table), int((table.group == "AD").sum()))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    p = sm.params
    with runlog.stop_on_input_error():
        main(sm.output.tsv, sm.output.sidecar, p.subjects, p.get("cohort"), p.get("effects"), p.get("groups"),
             sm.log[0])
    runlog.finish(sm)
