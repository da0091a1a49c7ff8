"""Rule make_splits: a task's subject-level stratified cross-validation splits, drawn once per study and
shared by every model of the task (splits.tsv)."""
from dlmi import io
from dlmi.analysis import tasks, validation
from dlmi.sim import cohort
from dlmi_workflow import runlog


def main(participants_tsv, participants_schema: dict, splits_tsv, task: str, subjects: list[str], folds: int,
         repeats: int, seed: int, log=None):
    """subjects: the participant_ids of the group stage (the study's, less cohort.exclude)."""
    logger = runlog.start(log, "make_splits")
    participants = cohort.read_participants(participants_tsv, subjects, participants_schema)
    labels = tasks.task_labels(participants[participants.participant_id.isin(subjects)], task)
    tasks.check_class_sizes(labels, folds, task)
    splits = validation.stratified_splits(labels, folds=folds, repeats=repeats, seed=seed)
    validation.check_splits(splits, labels.index, splits_tsv)
    io.write_tsv(splits_tsv, splits)
    logger.info("task %s: %d subjects (%d positive), %d repeats of %d folds", task, len(labels),
                int(labels.sum()), repeats, folds)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    p = sm.params
    with runlog.stop_on_input_error():
        main(sm.input.participants, p.participants_schema, sm.output.splits, sm.wildcards.task, p.subjects, p.folds,
             p.repeats, p.seed, sm.log[0])
    runlog.finish(sm)
