"""The design matrix of one model job: which columns a feature set names and where each comes from.

A table feature set (config key model.feature_sets) lists three kinds of entries:
- a column of the group features table (features.tsv): regional volumes, SUVRs;
- a clinical variable of participants.tsv (`CLINICAL`): age, sex, education_years, cognitive_score, cdr_sb,
  amyloid, coded as numbers;
- "svm_score:<feature set>": the decision value of a linear SVM on that other feature set's columns,
  computed out of fold inside every training fold (dlmi.analysis.models.SvmScores), as the course's
  "clinical + T1 score" rows do.
An image feature set holds one entry, "image:<name>" (`IMAGES`: the T1w or a tissue fraction map): its rows
are the subjects' images, flattened (dlmi.analysis.images), read by the CNN (dlmi.analysis.cnn) or by a
classical model asked for it.

Neither scikit-learn nor torch, so that planning a study (the Snakefile) imports it cheaply.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import tasks
from dlmi.sim import cohort

SCORE_PREFIX = "svm_score:"
IMAGE_PREFIX = "image:"
# image name -> what it is, each in template space through the subject's affine registration (rule
# gather_images, dlmi.analysis.images)
IMAGES = {
    "T1w": "the T1w image, divided by its median brain intensity",
    "GM": "the grey-matter fraction map (rule segment_t1)",
    "WM": "the white-matter fraction map (rule segment_t1)",
    "CSF": "the CSF fraction map (rule segment_t1)",
}
# classifiers that read image feature sets only (dlmi.analysis.cnn); the others read table sets unless their
# config lists image sets too (model.classifiers.<name>.feature_sets)
IMAGE_CLASSIFIERS = ("cnn",)

# participants.tsv column -> its numeric coding (None: the number as it stands)
CLINICAL = {
    "age": None,
    "sex": {"F": 0.0, "M": 1.0},
    "education_years": None,
    "cognitive_score": None,
    "cdr_sb": None,
    "amyloid": {"negative": 0.0, "positive": 1.0},
}


def score_inputs(feature_sets: dict[str, list[str]], name: str) -> dict[str, list[str]]:
    """The SVM scores feature set `name` holds: score name ("svm_score:t1_volumes") -> the columns of the
    feature set it scores. Raises ValueError naming the config key for a score of an unknown feature set or
    of a feature set that holds scores itself."""
    scores = {}
    for entry in feature_sets[name]:
        if not entry.startswith(SCORE_PREFIX):
            continue
        source = entry.removeprefix(SCORE_PREFIX)
        if source not in feature_sets:
            raise ValueError(f"config key model.feature_sets.{name}: {entry!r} scores {source!r}, which is not "
                             f"a feature set ({', '.join(sorted(feature_sets))})")
        if image_of(feature_sets[source]) is not None:
            raise ValueError(f"config key model.feature_sets.{name}: {entry!r} scores an image feature set; a "
                             "score's feature set must name columns only")
        if any(column.startswith(SCORE_PREFIX) for column in feature_sets[source]):
            raise ValueError(f"config key model.feature_sets.{name}: {entry!r} scores a feature set that holds "
                             "SVM scores itself; a score's feature set must name columns only")
        scores[entry] = list(feature_sets[source])
    return scores


def matrix_columns(entries: list[str], scores: dict[str, list[str]]) -> list[str]:
    """The columns of the job's design matrix, each once in order of first mention: the feature set's own
    columns, then those its SVM scores read."""
    own = [entry for entry in entries if not entry.startswith(SCORE_PREFIX)]
    return list(dict.fromkeys(own + [column for columns in scores.values() for column in columns]))


def clinical_columns(columns: list[str]) -> list[str]:
    """Those of `columns` that come from participants.tsv."""
    return [column for column in columns if column in CLINICAL]


def clinical_table(participants: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The clinical `columns` of participants.tsv (read by dlmi.sim.cohort.read_participants) as numbers,
    with participant_id: sex M 1, F 0; amyloid positive 1, negative 0. A missing (n/a) or uncoded value is
    NaN, for the caller's check to name. A column the table lacks is left out, for the caller to name."""
    table = participants[["participant_id"]].copy()
    for column in columns:
        if column not in participants.columns:
            continue
        coding = CLINICAL[column]
        values = participants[column]
        table[column] = (values.map(coding) if coding else pd.to_numeric(values, errors="coerce")).astype(float)
    return table


def image_of(entries: list[str]) -> str | None:
    """The image an image feature set holds ("T1w" of ["image:T1w"]), or None for a table feature set."""
    images = [entry.removeprefix(IMAGE_PREFIX) for entry in entries if entry.startswith(IMAGE_PREFIX)]
    return images[0] if images else None


def check_feature_set(name: str, entries: list[str]) -> None:
    """Raise ValueError naming the config key unless an image feature set holds exactly one known image and
    nothing else."""
    images = [entry for entry in entries if entry.startswith(IMAGE_PREFIX)]
    if not images:
        return
    if len(entries) > 1:
        raise ValueError(f"config key model.feature_sets.{name}: an image feature set holds one image and "
                         f"nothing else, not {entries}")
    if image_of(entries) not in IMAGES:
        raise ValueError(f"config key model.feature_sets.{name}: unknown image {entries[0]!r} (known: "
                         + ", ".join(IMAGE_PREFIX + image for image in IMAGES) + ")")


def classifier_feature_sets(classifier: str, settings: dict, feature_sets: dict[str, list[str]],
                            declared: dict[str, list[str]]) -> list[str]:
    """The feature sets `classifier` runs on, in the order of `feature_sets` (those the study kept): the
    ones its config lists (`settings["feature_sets"]`), else every image set for an image classifier and
    every table set for the others. `declared`: every feature set of the config, so that a listed set the
    study left out (no PET) is skipped rather than refused. Raises ValueError naming the config key for a
    listed set that does not exist, or a table set listed for an image classifier."""
    key = f"model.classifiers.{classifier}.feature_sets"
    listed = settings.get("feature_sets")
    for name in listed or []:
        if name not in declared:
            raise ValueError(f"config key {key}: {name!r} is not a feature set ({', '.join(declared)})")
        if classifier in IMAGE_CLASSIFIERS and image_of(declared[name]) is None:
            raise ValueError(f"config key {key}: {classifier} reads images, and {name!r} is not an image "
                             "feature set")
    if listed is not None:
        return [name for name in feature_sets if name in listed]
    wants_images = classifier in IMAGE_CLASSIFIERS
    return [name for name, entries in feature_sets.items() if (image_of(entries) is not None) == wants_images]


def check_features(path, features: pd.DataFrame, columns: list[str], feature_set: str) -> None:
    """Raise InputError naming `path` (the features table, read as `features`) unless it has a participant_id
    column and the feature `columns` (of `feature_set`), each holding a finite number for every participant
    (not empty, n/a, text or inf). Lines are numbered as in the file (the header is line 1)."""
    missing = [c for c in ["participant_id", *columns] if c not in features.columns]
    if missing:
        raise io.InputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                            + ", ".join(repr(c) for c in missing)
                            + f" (feature set {feature_set!r}: config key model.feature_sets)")
    values = features[columns].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise io.InputError(f"{path}: line {row + 2} ({features['participant_id'].iloc[row]}): missing feature "
                            f"value in column {columns[column]!r} ({int(bad.sum())} of {bad.size} values missing "
                            "or not finite)")


def read_images(path, subjects: list[str], feature_set: str) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """The images of `subjects` from `path` (rule gather_images' .npz) as rows (indexed by participant_id,
    one column per voxel in C order) and the image shape. Raises InputError naming the file for a subject
    it lacks."""
    arrays, _ = io.load_npz(path, ("images", "participant_id"), ())
    position = {participant: k for k, participant in enumerate(arrays["participant_id"].tolist())}
    absent = [s for s in subjects if s not in position]
    if absent:
        raise io.InputError(f"{path}: no image of {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''} "
                            f"(feature set {feature_set!r})")
    images = arrays["images"]
    rows = images[[position[s] for s in subjects]].reshape(len(subjects), -1)
    return pd.DataFrame(rows, index=pd.Index(subjects, name="participant_id")), tuple(images.shape[1:])


def design_matrix(features_path, participants_tsv, participants_schema: dict, splits_tsv, subjects: list[str],
                  params: dict) -> tuple[pd.DataFrame, pd.Series, tuple[int, ...] | None]:
    """The job's design matrix (rows: the task's `subjects`, those of `splits_tsv`, indexed by participant_id),
    its labels and, for an image feature set, the image shape (else None); each input checked with its file
    named. `features_path`: the features table (columns: matrix_columns) or, for an image feature set, the
    images (read_images)."""
    task, feature_set = params["task"], params["features"]

    def participants_and_labels():
        table = cohort.read_participants(participants_tsv, subjects, participants_schema)
        table = table[table.participant_id.isin(subjects)].reset_index(drop=True)
        return table, tasks.task_labels(table, task, participants_tsv)

    if image_of(params["columns"]) is not None:
        _, labels = participants_and_labels()
        rows, shape = read_images(features_path, list(labels.index), feature_set)
        return rows, labels, shape
    columns = matrix_columns(params["columns"], params.get("scores") or {})
    label_column = tasks.TASKS[task]["column"]
    if label_column in columns:
        raise io.InputError(f"feature set {feature_set!r} (config key model.feature_sets) holds {label_column!r}, "
                            f"the label of task {task}")
    clinical = clinical_columns(columns)
    imaging = [c for c in columns if c not in clinical]
    table = pd.read_csv(features_path, sep="\t", dtype={"participant_id": str})
    check_features(features_path, table, imaging, feature_set)
    absent = [s for s in subjects if s not in set(table["participant_id"])]
    if absent:
        raise io.InputError(f"{features_path}: no row for {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}"
                            f" (task {task}, {splits_tsv})")
    participants, labels = participants_and_labels()
    values = clinical_table(participants, clinical)
    check_features(participants_tsv, values, clinical, feature_set)
    merged = table[["participant_id", *imaging]].merge(values, on="participant_id", how="inner")
    return merged.set_index("participant_id").loc[labels.index, columns].astype(float), labels, None
