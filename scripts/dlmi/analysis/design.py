"""The design matrix of one model job: which columns a feature set names and where each comes from.

A feature set (config key model.feature_sets) lists three kinds of entries:
- a column of the group features table (features.tsv): regional volumes, SUVRs;
- a clinical variable of participants.tsv (`CLINICAL`): age, sex, education_years, cognitive_score, cdr_sb,
  amyloid, coded as numbers;
- "svm_score:<feature set>": the decision value of a linear SVM on that other feature set's columns,
  computed out of fold inside every training fold (dlmi.analysis.models.SvmScores), as the course's
  "clinical + T1 score" rows do.
"""
from __future__ import annotations

import pandas as pd

SCORE_PREFIX = "svm_score:"

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
