"""The design of a simulated study: who is in it (participants) and how large the group and age effects are.

A participant's draws come from `dlmi.seeding.rng(study_seed, subject_id, "participant")` only, so adding or
removing subjects never changes anyone else. The same number of draws is made for every participant,
whatever its group, so that switching a group (or setting the effects to zero) changes nothing but the
effect itself.

This module is light (numpy and pandas only): `dlmi.sim.anatomy` imports `Effects` and `AgeEffects` from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from dlmi.seeding import rng as seeded_rng

GROUPS = ("CN", "sMCI", "pMCI", "AD")
SEXES = ("F", "M")
SUBTYPES = ("hippocampal", "cortical")
PARTICIPANT_COLUMNS = ("participant_id", "group", "age", "sex", "cognitive_score", "cdr_sb", "education_years",
                       "amyloid", "subtype")
# BIDS participants.json: the column descriptions of participants.tsv.
PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label, sub-<label>"},
    "group": {"Description": "Diagnostic group (simulated)",
              "Levels": {"CN": "cognitively normal", "sMCI": "mild cognitive impairment, stable over 3 years",
                         "pMCI": "mild cognitive impairment, converting to AD within 3 years",
                         "AD": "Alzheimer's disease"}},
    "age": {"Description": "Age at the imaging sessions", "Units": "year"},
    "sex": {"Description": "Sex", "Levels": {"F": "female", "M": "male"}},
    "cognitive_score": {"Description": "MMSE-like cognitive score (simulated), higher is better",
                        "Units": "points (0-30)"},
    "cdr_sb": {"Description": "CDR sum-of-boxes-like score (simulated), higher is worse", "Units": "points (0-18)"},
    "education_years": {"Description": "Years of education (simulated, the same in every group)", "Units": "year"},
    "amyloid": {"Description": "Amyloid status (simulated); it changes the MCI conversion risk",
                "Levels": {"positive": "amyloid positive", "negative": "amyloid negative"}},
    "subtype": {"Description": "Atrophy subtype (simulated truth) of an MCI or AD subject; n/a in CN",
                "Levels": {"hippocampal": "hippocampus-predominant", "cortical": "temporoparietal-cortical"}},
}


@dataclass(frozen=True)
class Effects:
    """Group differences, AD relative to CN (fractions of the CN value unless stated).

    hippocampal_atrophy: (low, high) range; each AD subject draws its hippocampal GM volume loss uniformly
        in it (GM turns into CSF, from the hippocampal boundary inwards).
    ventricle_enlargement: the lateral ventricles grow into surrounding WM/GM by this fraction of their volume.
    fdg_hypometabolism: GM FDG uptake lowered by this fraction in temporal and parietal cortex, and by half
        of it in the hippocampus.
    cognitive_score_drop: MMSE-like points lower in AD.
    cdr_sb_rise: CDR-SB-like points higher in AD.
    smci_severity, pmci_severity: the fraction of every imaging effect of AD a stable or a converting MCI
        subject has.
    smci_score_severity, pmci_score_severity: the same for the clinical scores (closer together than the
        imaging fractions, as in ADNI: MMSE about 27.5 in sMCI and 26.5 in pMCI).
    subtype_contrast: c; the hippocampus-predominant subtype has (1 + c) x the hippocampal atrophy and
        hippocampal hypometabolism and (1 - c) x the temporoparietal hypometabolism, the temporoparietal-cortical
        subtype the reverse (0: no subtypes).
    """

    hippocampal_atrophy: tuple[float, float] = (0.20, 0.30)
    ventricle_enlargement: float = 0.35
    fdg_hypometabolism: float = 0.20
    cognitive_score_drop: float = 8.0
    cdr_sb_rise: float = 4.5
    smci_severity: float = 0.25
    pmci_severity: float = 0.6
    smci_score_severity: float = 0.3
    pmci_score_severity: float = 0.45
    subtype_contrast: float = 0.0

    @classmethod
    def null(cls) -> Effects:
        """No group difference at all (every group, and both subtypes, drawn from the same distributions)."""
        return cls(hippocampal_atrophy=(0.0, 0.0), ventricle_enlargement=0.0, fdg_hypometabolism=0.0,
                   cognitive_score_drop=0.0, cdr_sb_rise=0.0, subtype_contrast=0.0)

    def severity(self, group: str) -> float:
        """The fraction of the imaging effects of AD a subject of `group` has: 0 in CN, 1 in AD."""
        return {"CN": 0.0, "sMCI": self.smci_severity, "pMCI": self.pmci_severity, "AD": 1.0}[group]

    def score_severity(self, group: str) -> float:
        """The fraction of the clinical-score effects of AD a subject of `group` has: 0 in CN, 1 in AD."""
        return {"CN": 0.0, "sMCI": self.smci_score_severity, "pMCI": self.pmci_score_severity, "AD": 1.0}[group]

    def subtype_weights(self, subtype: str | None) -> tuple[float, float]:
        """(hippocampal, temporoparietal) weights of the effects for a subtype (None or "n/a": (1, 1))."""
        c = self.subtype_contrast
        return {"hippocampal": (1.0 + c, 1.0 - c), "cortical": (1.0 - c, 1.0 + c)}.get(subtype, (1.0, 1.0))


@dataclass(frozen=True)
class AgeEffects:
    """Normal ageing, the same in both groups, acting on the years after `onset_age`.

    gm_loss_per_year: global GM volume loss (GM turns into CSF), fraction per year (~0.3 %/y).
    hippocampus_loss_per_year: hippocampal GM volume loss, fraction per year (~0.5 %/y).
    ventricle_growth_per_year: lateral-ventricle volume growth, fraction of the volume at onset per year (~2 %/y).
    cognitive_decline_per_year: MMSE-like points per year.
    """

    onset_age: float = 55.0
    gm_loss_per_year: float = 0.003
    hippocampus_loss_per_year: float = 0.005
    ventricle_growth_per_year: float = 0.02
    cognitive_decline_per_year: float = 0.05

    def years(self, age: float) -> float:
        """Years of ageing after onset (0 before onset)."""
        return max(float(age) - self.onset_age, 0.0)

    @classmethod
    def null(cls) -> AgeEffects:
        """No ageing effect."""
        return cls(gm_loss_per_year=0.0, hippocampus_loss_per_year=0.0, ventricle_growth_per_year=0.0,
                   cognitive_decline_per_year=0.0)


@dataclass(frozen=True)
class Cohort:
    """Study parameters: size, seed, group mix, age range (years, uniform, same for every group), effects.

    A subject is AD with probability ad_fraction, MCI with probability mci_fraction, else CN. Its amyloid
    status is positive with probability amyloid_positive[group] (CN, MCI, AD); an MCI subject converts to
    AD within 3 years (pMCI, else sMCI) with probability conversion_risk[0] when amyloid positive and
    conversion_risk[1] when negative. The defaults are those of the config schema
    (workflow/schemas/config.schema.yaml, checked by tests/unit/test_defaults.py)."""

    n_subjects: int = 20
    seed: int = 2026
    ad_fraction: float = 0.5
    mci_fraction: float = 0.0
    age_min: float = 55.0
    age_max: float = 90.0
    amyloid_positive: tuple[float, float, float] = (0.25, 0.55, 0.90)
    conversion_risk: tuple[float, float] = (0.60, 0.15)
    effects: Effects = field(default_factory=Effects)
    age_effects: AgeEffects = field(default_factory=AgeEffects)

    def __post_init__(self):
        if self.n_subjects < 1:
            raise ValueError(f"n_subjects must be >= 1, not {self.n_subjects}")
        if not (0.0 <= self.ad_fraction <= 1.0 and 0.0 <= self.mci_fraction <= 1.0
                and self.ad_fraction + self.mci_fraction <= 1.0 + 1e-12):
            raise ValueError(f"ad_fraction ({self.ad_fraction}) and mci_fraction ({self.mci_fraction}) must lie "
                             "in [0, 1] and sum to at most 1")
        if not self.age_min <= self.age_max:
            raise ValueError(f"age_min ({self.age_min}) must not exceed age_max ({self.age_max})")

    def with_effects(self, effects: Effects) -> Cohort:
        return replace(self, effects=effects)

    @classmethod
    def from_config(cls, cohort_params: dict, effects: dict | None = None) -> Cohort:
        """From the config sections `cohort` (seed, n_subjects, ad_fraction, mci_fraction, age_range [min, max],
        amyloid_positive {CN, MCI, AD}, conversion_risk {amyloid_positive, amyloid_negative}; `exclude` is
        ignored here) and `anatomy.effects` (hippocampal_atrophy [low, high] and the other fields of Effects).
        Missing keys take the defaults; an unknown key raises ValueError naming it."""
        params = dict(cohort_params or {})
        known = {"seed", "n_subjects", "ad_fraction", "mci_fraction", "age_range", "amyloid_positive",
                 "conversion_risk", "exclude"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"config key cohort.{unknown[0]} is not a cohort parameter")
        kwargs = {k: params[k] for k in ("seed", "n_subjects", "ad_fraction", "mci_fraction") if k in params}
        if "age_range" in params:
            age_min, age_max = params["age_range"]
            kwargs.update(age_min=float(age_min), age_max=float(age_max))
        for key, names in (("amyloid_positive", ("CN", "MCI", "AD")),
                           ("conversion_risk", ("amyloid_positive", "amyloid_negative"))):
            if key in params:
                given = {**dict(zip(names, getattr(cls, key))), **params[key]}
                odd = sorted(set(given) - set(names))
                if odd:
                    raise ValueError(f"config key cohort.{key}.{odd[0]} is not one of {', '.join(names)}")
                kwargs[key] = tuple(float(given[name]) for name in names)
        eff = dict(effects or {})
        unknown = sorted(set(eff) - {f.name for f in fields(Effects)})
        if unknown:
            raise ValueError(f"config key anatomy.effects.{unknown[0]} is not an effect size")
        if "hippocampal_atrophy" in eff:
            low, high = eff["hippocampal_atrophy"]
            eff["hippocampal_atrophy"] = (float(low), float(high))
        return cls(effects=Effects(**eff), **kwargs)


from_config = Cohort.from_config


# MMSE-like score of a cognitively normal 55-year-old and its between-subject SD (points); CDR-SB-like score
# SD (points, before rounding to half points); years of education, mean and SD (8-22 years).
COGNITIVE_SCORE_CN_MEAN = 29.0
COGNITIVE_SCORE_SD = 1.5
CDR_SB_SD = 0.8
EDUCATION_MEAN, EDUCATION_SD = 15.0, 3.0


def draw_participant(study_seed: int, subject_id: str, cohort: Cohort | None = None) -> dict:
    """One participant's demographics, clinical scores and truth, drawn from its own generator.

    Returns dict(participant_id "sub-<id>", group "CN"/"sMCI"/"pMCI"/"AD", age (years, 0.1 y), sex "F"/"M",
    cognitive_score (int, 0..30; MMSE-like: lower by `Effects.score_severity` x `effects.cognitive_score_drop`
    and by `age_effects.cognitive_decline_per_year` per year after onset), cdr_sb (0..18 in half points,
    higher by the score severity x `effects.cdr_sb_rise`), education_years (int), amyloid "positive"/"negative", subtype
    "hippocampal"/"cortical" ("n/a" in CN), severity (the fraction of the AD effects, `Effects.severity`)).
    """
    cohort = cohort or Cohort()
    gen = seeded_rng(study_seed, str(subject_id), "participant")
    # Always the same draws, in the same order, whatever the outcome (the first four are the CN/AD design's).
    u_group, u_age, u_sex = gen.random(3)
    noise = gen.standard_normal()
    u_amyloid, u_conversion, u_subtype = gen.random(3)
    cdr_noise, education_noise = gen.standard_normal(2)
    mci = cohort.ad_fraction <= u_group < cohort.ad_fraction + cohort.mci_fraction
    group = "AD" if u_group < cohort.ad_fraction else "MCI" if mci else "CN"
    amyloid = u_amyloid < cohort.amyloid_positive[("CN", "MCI", "AD").index(group)]
    if group == "MCI":
        group = "pMCI" if u_conversion < cohort.conversion_risk[0 if amyloid else 1] else "sMCI"
    age = round(cohort.age_min + (cohort.age_max - cohort.age_min) * u_age, 1)
    sex = "F" if u_sex < 0.5 else "M"
    clinical = cohort.effects.score_severity(group)
    score = (COGNITIVE_SCORE_CN_MEAN
             - cohort.age_effects.cognitive_decline_per_year * cohort.age_effects.years(age)
             - cohort.effects.cognitive_score_drop * clinical
             + COGNITIVE_SCORE_SD * noise)
    cdr_sb = cohort.effects.cdr_sb_rise * clinical + CDR_SB_SD * (abs(cdr_noise) if group == "CN" else cdr_noise)
    return {
        "participant_id": f"sub-{subject_id}",
        "group": group,
        "age": float(age),
        "sex": sex,
        "cognitive_score": int(np.clip(np.rint(score), 0, 30)),
        "cdr_sb": float(np.clip(np.rint(2 * cdr_sb) / 2, 0.0, 18.0)),
        "education_years": int(np.clip(np.rint(EDUCATION_MEAN + EDUCATION_SD * education_noise), 8, 22)),
        "amyloid": "positive" if amyloid else "negative",
        "subtype": "n/a" if group == "CN" else SUBTYPES[int(u_subtype < 0.5)],
        "severity": cohort.effects.severity(group),
    }


def participants_table(study_seed: int | Cohort, subject_ids: list[str], cohort: Cohort | None = None):
    """BIDS participants.tsv as a pandas DataFrame with the PARTICIPANT_COLUMNS.

    Either participants_table(study_seed, subject_ids, cohort) or participants_table(cohort, subject_ids)
    (then the study seed is cohort.seed).
    """
    import pandas as pd

    if isinstance(study_seed, Cohort):
        study_seed, cohort = study_seed.seed, study_seed
    rows = [draw_participant(study_seed, sid, cohort) for sid in subject_ids]
    return pd.DataFrame(rows, columns=list(PARTICIPANT_COLUMNS))


MISSING = "n/a"  # BIDS's missing value


def read_participants(path, expected_ids, schema: dict):
    """Read and check a BIDS participants.tsv; returns it as a pandas DataFrame (participant_id as str).

    expected_ids: participant_ids ("sub-001", ...) the caller needs; the table may hold more.
    schema: JSON schema of one row (workflow/schemas/participants.schema.yaml): its `required` columns must
    be present and every row must validate. A value may be missing ("n/a", as BIDS writes it) in any column
    but participant_id: the schema does not check it, the numeric columns hold NaN there, and a task that
    needs the value says so (dlmi.analysis.validation).
    Raises dlmi.io.InputError naming the file and the first problem: a missing column, an empty cell, a
    participant_id of n/a, a row that breaks the schema (e.g. an unknown group), a duplicate participant_id,
    or expected participants that are absent. Lines are numbered as in the file (the header is line 1).
    """
    import jsonschema
    import pandas as pd

    from dlmi.io import InputError

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as err:
        raise InputError(f"{path}: not a readable tab-separated table ({type(err).__name__})") from err
    missing = [c for c in schema.get("required", []) if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                         + ", ".join(repr(c) for c in missing))
    for column in table.columns:
        cells = table[column].str.strip()
        empty = table.index[(cells == "") | ((cells == MISSING) & (column == "participant_id"))]
        if len(empty):
            raise InputError(f"{path}: line {empty[0] + 2}: empty value in column {column!r}")
    # the required columns are there (above); a row's n/a cells are left out of its check
    validator = jsonschema.Draft7Validator({key: value for key, value in schema.items() if key != "required"})
    for k, row in enumerate(table.to_dict("records")):
        row = {column: _cell(value) if column != "participant_id" else value for column, value in row.items()
               if value.strip() != MISSING}
        error = next(iter(sorted(validator.iter_errors(row), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = f"column {error.absolute_path[0]!r}: " if error.absolute_path else ""
            raise InputError(f"{path}: line {k + 2} ({row.get('participant_id')}): {where}{error.message}")
    ids = table["participant_id"]
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        lines = [k + 2 for k in ids.index[ids == duplicated.iloc[0]]]
        raise InputError(f"{path}: duplicate participant_id {duplicated.iloc[0]} (lines "
                         + ", ".join(map(str, lines)) + ")")
    absent = [i for i in expected_ids if i not in set(ids)]
    if absent:
        raise InputError(f"{path}: missing participant{'s' if len(absent) > 1 else ''} " + ", ".join(absent))
    return _typed(table)


def _cell(text: str):
    """A table cell as the JSON value it spells: int, finite float, or the text itself."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if np.isfinite(value) else text
    return text


def _typed(table):
    """Numeric columns of a participants table read as strings: parsed where every value is a number or n/a
    (n/a becomes NaN; a column of whole numbers without n/a stays integer)."""
    import pandas as pd

    table = table.copy()
    for column in table.columns.drop("participant_id", errors="ignore"):
        given = table[column].str.strip() != MISSING
        numbers = pd.to_numeric(table[column].where(given), errors="coerce")
        if given.any() and numbers[given].notna().all():
            table[column] = numbers
    return table
