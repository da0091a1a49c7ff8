"""A researcher's own BIDS dataset as the study's input: which subjects, which T1w image of each, which group.

`discover(config)` runs at parse time when the config names `input.bids_dir`. It indexes the dataset with
pybids (docs/bids.md), applies the participant selection and the BIDS filter file, picks one T1w image per
subject by a stated rule (`choose`), maps the diagnosis column of participants.tsv to the study's groups,
and collects one line per problem (`Dataset.problems`): a subject without a T1w image, a participant listed
without images, images without a participant row, image names that are not BIDS, a diagnosis value outside
the mapping. A problem drops what it names and the rest of the cohort proceeds; a bad dataset folder or
filter file, which no subject can get past, raises DatasetError naming the config key.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from dlmi_workflow.bids import is_label

# The T1w query before the filter file's "t1w" entry updates it (as fMRIPrep's --bids-filter-file does).
T1W_QUERY = {"datatype": "anat", "suffix": "T1w", "extension": [".nii", ".nii.gz"]}


class DatasetError(ValueError):
    """The input dataset cannot be read at all (the message names the config key and the path)."""


@dataclass(frozen=True)
class Scan:
    """One image of the dataset: its subject, session and run labels (None when absent) and its absolute
    path (whose name tells images that differ in other entities apart)."""

    subject: str
    session: str | None
    run: int | None
    path: str

    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class Dataset:
    """What `discover` found: subject label -> its chosen T1w, subject label -> group ("CN" or "AD") for the
    subjects with a mapped diagnosis, and one line per problem and per choice among several images."""

    root: str
    t1w: dict[str, Scan]
    groups: dict[str, str]
    problems: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)


def read_filters(path) -> dict:
    """The T1w query: `T1W_QUERY` updated with the "t1w" entry of the JSON filter file at `path` (None: no
    file). A null value asks for images without that entity (pybids' Query.NONE), as in fMRIPrep."""
    query = dict(T1W_QUERY)
    if path is None:
        return query
    try:
        with open(path) as fh:
            filters = json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"config key 'input.bids_filter_file': {path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"config key 'input.bids_filter_file': {path}: not valid JSON ({err})") from None
    if not isinstance(filters, dict) or not isinstance(filters.get("t1w", {}), dict):
        raise DatasetError(f"config key 'input.bids_filter_file': {path}: expected "
                           '{"t1w": {"<entity>": <value>, ...}}')
    unknown = [k for k in filters if k != "t1w"]
    if unknown:
        raise DatasetError(f"config key 'input.bids_filter_file': {path}: unknown entry {unknown[0]!r} "
                           "(this workflow reads T1w images only: \"t1w\")")
    query.update(filters.get("t1w", {}))
    return query


def choose(scans: list[Scan], session: str | None, run: str) -> tuple[Scan | None, str | None]:
    """One subject's image among its `scans`, by the stated rule: the session named by input.session, else the
    first session in sort order; within it the first or last run (input.run), and among images that differ in
    other entities (acquisition, ...) the first in sort order of their names.

    Returns (the scan, a line saying what was chosen among several, or None when there was one), or
    (None, the problem) when the named session is not among the subject's.
    """
    sessions = sorted({s.session for s in scans}, key=lambda s: (s is not None, s or ""))
    if session is not None and session not in sessions:
        have = ", ".join(f"ses-{s}" for s in sessions if s is not None) or "no sessions"
        return None, f"no T1w image in ses-{session} (input.session); it has {have}"
    picked_session = session if session is not None else sessions[0]
    candidates = [s for s in scans if s.session == picked_session]
    runs = sorted({s.run for s in candidates}, key=lambda r: (r is not None, r or 0))
    picked_run = runs[-1] if run == "last" else runs[0]
    chosen = min((s for s in candidates if s.run == picked_run), key=Scan.name)
    if len(scans) == 1:
        return chosen, None
    rule = ("input.session" if session is not None else "first session") + f", {run} run (input.run)"
    names = ", ".join(s.name() for s in sorted(scans, key=Scan.name))
    return chosen, f"{len(scans)} T1w images ({names}); using {chosen.name()} ({rule})"


def discover(config: dict) -> Dataset:
    """Index the dataset at config input.bids_dir and choose the study's subjects and images (see the module
    docstring). config: the validated study config."""
    settings = config["input"]
    root = os.path.abspath(settings["bids_dir"])
    if not os.path.isdir(root):
        raise DatasetError(f"config key 'input.bids_dir': {settings['bids_dir']}: no such folder")
    if not os.path.isfile(os.path.join(root, "dataset_description.json")):
        raise DatasetError(f"config key 'input.bids_dir': {root}: not a BIDS dataset "
                           "(no dataset_description.json at its top)")
    query = read_filters(settings["bids_filter_file"])
    scans, subjects, problems = _t1w_scans(root, query)
    wanted = set(settings["participant_label"])
    excluded = set(settings["exclude_participant_label"])
    selected = {label for label in subjects if (not wanted or label in wanted) and label not in excluded}
    named = {line: line.split("/", 1)[0][4:] for line in problems if line.startswith("sub-")}  # non-BIDS names
    problems = [line for line in problems if line not in named or named[line] in selected]
    reported = set(named.values())
    for label in sorted(wanted - set(subjects)):
        problems.append(f"sub-{label}: no such subject folder (input.participant_label names it)")
    found = {scan.subject for scan in scans}
    for label in sorted(selected - found - reported):
        problems.append(f"sub-{label}: no T1w image (query: {_query_text(query)}); left out")
    by_subject: dict[str, list[Scan]] = {}
    for scan in scans:
        if scan.subject in selected:
            by_subject.setdefault(scan.subject, []).append(scan)
    t1w, choices = {}, []
    for subject in sorted(by_subject):
        chosen, line = choose(by_subject[subject], settings["session"], settings["run"])
        if chosen is None:
            problems.append(f"sub-{subject}: {line}")
            continue
        t1w[subject] = chosen
        if line:
            choices.append(f"sub-{subject}: {line}")
    # a subject with a line above gets no second one from participants.tsv
    skip = reported | {label for label in selected if label not in t1w} | excluded | wanted - set(subjects)
    groups, group_problems = diagnoses(root, t1w, settings["diagnosis"], skip, wanted)
    return Dataset(root, t1w, groups, problems + group_problems, choices)


def _query_text(query: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in query.items())


def _t1w_scans(root: str, query: dict) -> tuple[list[Scan], list[str], list[str]]:
    """Every image pybids finds for the T1w `query`, the labels of the dataset's subject folders, and a line
    for each image found that is not named by BIDS rules."""
    from bids import BIDSLayout, BIDSLayoutIndexer
    from bids.layout import Query
    from bids_validator import BIDSValidator

    layout = BIDSLayout(root, validate=False, indexer=BIDSLayoutIndexer(validate=False, index_metadata=False))
    filters = {k: (Query.NONE if v is None else v) for k, v in query.items()}
    validator = BIDSValidator()
    scans, problems = [], []
    for image in layout.get(return_type="object", **filters):
        relative = "/" + os.path.relpath(image.path, root).replace(os.sep, "/")
        entities = image.get_entities()
        subject = entities.get("subject")
        if not validator.is_bids(relative) or subject is None or not is_label(str(subject)):
            problems.append(f"{relative.lstrip('/')}: not a BIDS name (left out)")
            continue
        run, session = entities.get("run"), entities.get("session")
        scans.append(Scan(str(subject), None if session is None else str(session), None if run is None else int(run),
                          image.path))
    subjects = sorted(p.name[4:] for p in os.scandir(root) if p.is_dir() and p.name.startswith("sub-")
                      and is_label(p.name[4:]))
    return scans, subjects, problems


def diagnoses(root: str, t1w: dict[str, Scan], settings: dict, skip: set, wanted: set
              ) -> tuple[dict[str, str], list[str]]:
    """Subject -> group from the diagnosis column of <root>/participants.tsv through the config's mapping
    (input.diagnosis: column, mapping source value -> CN or AD), and a line per problem: no table, no such
    column, a participant without images, images without a participant row, a value outside the mapping.
    Participants in `skip` (left out, or with a problem line already), or not in `wanted` when it is not
    empty (input.participant_label), get none."""
    import pandas as pd

    path = os.path.join(root, "participants.tsv")
    column, mapping = settings["column"], settings["mapping"]
    if not os.path.isfile(path):
        return {}, [f"{path}: file not found; no subject has a diagnosis, so the group stage is not planned"]
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        return {}, [f"{path}: not a readable tab-separated table ({type(err).__name__}); no subject has a "
                    "diagnosis, so the group stage is not planned"]
    missing = [c for c in ("participant_id", column) if c not in table.columns]
    if missing:
        key = " (input.diagnosis.column)" if column in missing else ""
        return {}, [f"{path}: no column {missing[0]!r}{key}; no subject has a diagnosis, so the group stage is "
                    "not planned"]
    problems, groups = [], {}
    listed = {}
    for line, (pid, value) in enumerate(zip(table["participant_id"], table[column]), start=2):
        label = pid[4:] if pid.startswith("sub-") else None
        if label is None or not is_label(label):
            problems.append(f"{path}: line {line}: participant_id {pid!r} is not sub-<label>")
            continue
        listed[label] = (line, value.strip())
    for label, (line, value) in sorted(listed.items()):
        if label in skip or (wanted and label not in wanted):
            continue
        if label not in t1w:
            problems.append(f"sub-{label}: listed in participants.tsv (line {line}) but has no T1w image used "
                            "by the study")
        elif value not in mapping:
            problems.append(f"sub-{label}: diagnosis {value!r} in column {column!r} of participants.tsv is not "
                            f"in input.diagnosis.mapping ({', '.join(sorted(mapping))}); left out of the group "
                            "stage")
        else:
            groups[label] = mapping[value]
    problems.extend(f"sub-{label}: has images but no row in participants.tsv; left out of the group stage"
                    for label in sorted(set(t1w) - set(listed)))
    return groups, problems


def model_settings(model: dict, *, has_pet: bool, participants: list[dict]) -> tuple[dict, list[str]]:
    """The config's model settings with what the study can run, and a line for each thing left out.

    A study without PET keeps no feature set with suvr_* columns, nor one holding the SVM score of a set left
    out. "classifier_sets" (added) maps each classifier to the kept feature sets it runs on
    (dlmi.analysis.design.classifier_feature_sets). The tasks kept are those `participants` (the group
    stage's rows of participants.tsv as known at planning time: drawn, or read from the BIDS dataset) give
    enough subjects of both classes for
    model.cv_folds (dlmi.analysis.tasks.feasible_tasks). Raises ValueError naming the config key for a
    feature set that scores an unknown feature set (dlmi.analysis.design.score_inputs), an image set that
    is not one known image alone, or a classifier's feature set that does not exist or does not suit it."""
    from dlmi.analysis import design, tasks

    sets = model["feature_sets"]
    scored = {name: [score.removeprefix(design.SCORE_PREFIX) for score in design.score_inputs(sets, name)]
              for name in sets}
    kept = sets if has_pet else {name: columns for name, columns in sets.items()
                                 if not any(c.startswith("suvr_") for c in columns)}
    kept = {name: columns for name, columns in kept.items() if all(source in kept for source in scored[name])}
    dropped = [f"feature set {name!r} (model.feature_sets) needs PET SUVR, which this study has no PET for; "
               "left out" for name in sets if name not in kept]
    planned, reasons = tasks.feasible_tasks(participants, model["tasks"], model["cv_folds"])
    for name, entries in sets.items():
        design.check_feature_set(name, entries)
    classifier_sets = {name: design.classifier_feature_sets(name, settings, kept, sets)
                       for name, settings in model["classifiers"].items()}
    return ({**model, "feature_sets": kept, "tasks": planned, "classifier_sets": classifier_sets},
            dropped + [f"{reason}; the task is not planned" for reason in reasons])


def participants_schema(schema: dict, *, simulated: bool) -> dict:
    """The row schema the group stage checks participants.tsv against: the full one of a simulated cohort,
    or, in a BIDS study (whose table the workflow writes with participant_id and group only), the same schema
    requiring just those two columns."""
    return schema if simulated else {**schema, "required": ["participant_id", "group"]}
