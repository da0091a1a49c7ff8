"""The prediction tasks of the group models (config key model.tasks): which participants.tsv column holds a
task's label and which two of its values are the classes, and whether a study has the subjects for it.

Plain pandas, so that planning a study (the Snakefile) reads it without scikit-learn.
"""
from __future__ import annotations

import pandas as pd

from dlmi.io import InputError

# task -> the participants.tsv column that holds its label, and the positive and negative values
TASKS = {
    "diagnosis": {"column": "group", "positive": "AD", "negative": "CN"},
    "prognosis": {"column": "group", "positive": "pMCI", "negative": "sMCI"},
}


def task_labels(participants: pd.DataFrame, task: str, path="participants.tsv") -> pd.Series:
    """The task's binary labels (1 positive, 0 negative) indexed by participant_id, for the participants
    whose label column holds one of the task's two values (other groups take no part). Raises InputError
    naming `path` and the task if the table lacks the label column."""
    spec = TASKS[task]
    if spec["column"] not in participants.columns:
        raise InputError(f"{path}: no column {spec['column']!r}, which holds the labels of task {task}")
    values = participants.set_index("participant_id")[spec["column"]]
    values = values[values.isin([spec["positive"], spec["negative"]])]
    return (values == spec["positive"]).astype(int)


def class_size_problem(counts: dict[str, int], folds: int, task: str) -> str | None:
    """What keeps `task` from being cross-validated with `folds` folds, given its classes' subject counts
    (class value -> count), or None: each class needs at least `folds` subjects."""
    spec = TASKS[task]
    smallest = min((spec["negative"], spec["positive"]), key=lambda value: counts.get(value, 0))
    if counts.get(smallest, 0) < folds:
        return (f"task {task}: {counts.get(smallest, 0)} {smallest} subject(s), fewer than the {folds} "
                "cross-validation folds (config key model.cv_folds)")
    return None


def check_class_sizes(labels: pd.Series, folds: int, task: str) -> None:
    """Raise InputError naming the task unless each class has at least `folds` subjects."""
    spec = TASKS[task]
    problem = class_size_problem({spec["negative"]: int((labels == 0).sum()),
                                  spec["positive"]: int((labels == 1).sum())}, folds, task)
    if problem:
        raise InputError(problem)


def feasible_tasks(participants: list[dict], tasks: list[str], folds: int) -> tuple[list[str], list[str]]:
    """The `tasks` the `participants` (one dict of participants.tsv values per subject) can cross-validate
    with `folds` folds, and for each other task the reason: its label column is absent, or a class has
    fewer subjects than folds."""
    kept, reasons = [], []
    for task in tasks:
        column = TASKS[task]["column"]
        if not any(column in row for row in participants):
            reasons.append(f"task {task}: no participant has a {column!r} value")
            continue
        counts = pd.Series([row.get(column) for row in participants]).value_counts().to_dict()
        problem = class_size_problem(counts, folds, task)
        if problem:
            reasons.append(problem)
        else:
            kept.append(task)
    return kept, reasons
