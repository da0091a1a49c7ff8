"""Rule make_participants: the cohort's participants.tsv (the truth of group, age, sex, score)."""
from dlmi import io
from dlmi.sim import cohort
from dlmi_workflow import runlog


def main(tsv, sidecar, cohort_params, effects, subjects, log=None):
    logger = runlog.start(log, "make_participants")
    table = cohort.participants_table(cohort.Cohort.from_config(cohort_params, effects), subjects)
    io.write_tsv(tsv, table)
    io.write_json(sidecar, cohort.PARTICIPANTS_JSON)
    logger.info("%d participants, %d AD", len(table), int((table.group == "AD").sum()))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(sm.output.tsv, sm.output.sidecar, sm.params.cohort, sm.params.effects, sm.params.subjects, sm.log[0])
    runlog.finish(sm)
