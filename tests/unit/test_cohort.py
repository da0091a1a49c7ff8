"""Participants of a simulated study: reproducible per subject, independent of cohort size."""
import numpy as np
import pytest

from dlmi.sim.cohort import (
    PARTICIPANT_COLUMNS,
    PARTICIPANTS_JSON,
    AgeEffects,
    Cohort,
    Effects,
    draw_participant,
    from_config,
    participants_table,
)
from dlmi_workflow.bids import simulated_subjects


def test_subject_ids_are_zero_padded_and_ordered():
    assert simulated_subjects(3) == ["001", "002", "003"]
    assert simulated_subjects(1000)[-1] == "1000" and len(simulated_subjects(1000)) == 1000


def test_participant_is_deterministic_and_independent_of_cohort_size():
    small, large = Cohort(n_subjects=5, seed=7), Cohort(n_subjects=10, seed=7)
    a = participants_table(7, simulated_subjects(small.n_subjects), small)
    b = participants_table(7, simulated_subjects(large.n_subjects), large)
    assert a.loc[a.participant_id == "sub-003"].to_dict("records") == \
        b.loc[b.participant_id == "sub-003"].to_dict("records")
    assert a.equals(b.iloc[:5].reset_index(drop=True))
    assert draw_participant(7, "003", small) == draw_participant(7, "003", small)
    assert draw_participant(7, "003", small) != draw_participant(8, "003", small)


def test_table_has_bids_participant_columns_and_valid_values():
    cohort = Cohort(n_subjects=300, seed=1)
    table = participants_table(1, simulated_subjects(cohort.n_subjects), cohort)
    assert tuple(table.columns) == PARTICIPANT_COLUMNS
    assert table.participant_id.iloc[0] == "sub-001"
    assert set(table.group) == {"CN", "AD"} and set(table.sex) == {"F", "M"}
    assert table.age.between(cohort.age_min, cohort.age_max).all()
    assert table.cognitive_score.between(0, 30).all()
    assert 0.4 < (table.group == "AD").mean() < 0.6
    # same age distribution in both groups; AD scores lower by about the configured drop
    ages = table.groupby("group").age.mean()
    assert abs(ages["AD"] - ages["CN"]) < 5
    scores = table.groupby("group").cognitive_score.mean()
    assert scores["CN"] - scores["AD"] == pytest.approx(cohort.effects.cognitive_score_drop, abs=1.0)


def test_null_effects_change_only_the_score_gap():
    ids = simulated_subjects(200)
    base = participants_table(3, ids, Cohort(n_subjects=200, seed=3))
    null = participants_table(3, ids, Cohort(n_subjects=200, seed=3, effects=Effects.null()))
    assert base[["participant_id", "group", "age", "sex"]].equals(null[["participant_id", "group", "age", "sex"]])
    scores = null.groupby("group").cognitive_score.mean()
    assert abs(scores["CN"] - scores["AD"]) < 0.6


def test_ad_fraction_extremes_and_age_decline():
    ids = simulated_subjects(50)
    all_ad = participants_table(2, ids, Cohort(n_subjects=50, ad_fraction=1.0))
    assert (all_ad.group == "AD").all()
    cohort = Cohort(n_subjects=400, seed=5, effects=Effects.null(),
                    age_effects=AgeEffects(cognitive_decline_per_year=0.1))
    table = participants_table(5, simulated_subjects(400), cohort)
    slope = np.polyfit(table.age, table.cognitive_score, 1)[0]
    assert -0.15 < slope < -0.05


@pytest.mark.parametrize("kwargs", [{"n_subjects": 0}, {"ad_fraction": 1.5}, {"age_min": 90, "age_max": 60}])
def test_cohort_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        Cohort(**kwargs)


def test_from_config_and_cohort_first_call():
    cohort = from_config({"seed": 9, "n_subjects": 4, "ad_fraction": 0.3, "age_range": [60, 80], "exclude": []},
                         {"hippocampal_atrophy": [0.1, 0.2], "ventricle_enlargement": 0.5})
    assert (cohort.seed, cohort.n_subjects, cohort.ad_fraction, cohort.age_min, cohort.age_max) == (9, 4, 0.3, 60, 80)
    assert cohort.effects.hippocampal_atrophy == (0.1, 0.2) and cohort.effects.ventricle_enlargement == 0.5
    assert cohort.effects.fdg_hypometabolism == Effects().fdg_hypometabolism
    # a subject's draws need no cohort size
    assert Cohort.from_config({"seed": 9, "ad_fraction": 0.3, "age_range": [60, 80]}).n_subjects == Cohort().n_subjects
    assert participants_table(cohort, simulated_subjects(4)).equals(participants_table(9, simulated_subjects(4), cohort))
    assert set(PARTICIPANTS_JSON) == set(PARTICIPANT_COLUMNS)
    with pytest.raises(ValueError, match=r"cohort\.sede"):
        from_config({"sede": 1})
    with pytest.raises(ValueError, match=r"effects\.atrophy"):
        from_config({}, {"atrophy": 0.2})


def test_an_mci_cohort_has_four_groups_with_their_amyloid_conversion_and_scores():
    """With mci_fraction, MCI subjects stable (sMCI) or converting (pMCI), conversion more likely when amyloid
    positive; clinical scores ordered CN < sMCI < pMCI < AD in impairment; a subtype in every patient."""
    design = Cohort(n_subjects=3000, seed=4, ad_fraction=0.2, mci_fraction=0.6)
    table = participants_table(design, simulated_subjects(design.n_subjects))
    assert tuple(table.columns) == PARTICIPANT_COLUMNS and set(PARTICIPANTS_JSON) == set(PARTICIPANT_COLUMNS)
    share = table.group.value_counts(normalize=True)
    assert share["AD"] == pytest.approx(0.2, abs=0.03)
    assert share["sMCI"] + share["pMCI"] == pytest.approx(0.6, abs=0.03)
    mci = table[table.group.isin(["sMCI", "pMCI"])]
    converts = (mci.group == "pMCI").groupby(mci.amyloid).mean()
    assert converts["positive"] == pytest.approx(design.conversion_risk[0], abs=0.05)
    assert converts["negative"] == pytest.approx(design.conversion_risk[1], abs=0.05)
    amyloid = (table.amyloid == "positive").groupby(table.group.replace({"sMCI": "MCI", "pMCI": "MCI"})).mean()
    for k, group in enumerate(("CN", "MCI", "AD")):
        assert amyloid[group] == pytest.approx(design.amyloid_positive[k], abs=0.05)
    means = table.groupby("group")[["cognitive_score", "cdr_sb"]].mean()
    order = ["CN", "sMCI", "pMCI", "AD"]
    assert means.cognitive_score[order].is_monotonic_decreasing and means.cdr_sb[order].is_monotonic_increasing
    effects = design.effects
    gap = means.cognitive_score["sMCI"] - means.cognitive_score["pMCI"]
    assert gap == pytest.approx((effects.pmci_score_severity - effects.smci_score_severity)
                                * effects.cognitive_score_drop, abs=0.3)
    assert (table.subtype == "n/a").eq(table.group == "CN").all()
    assert table[table.group != "CN"].subtype.value_counts(normalize=True).min() > 0.45
    assert table.education_years.between(8, 22).all() and table.cdr_sb.mul(2).eq(table.cdr_sb.mul(2).round()).all()


def test_mci_draws_leave_a_cn_ad_cohort_as_it_was():
    """The MCI design adds draws after the CN/AD design's, so a CN/AD study keeps its groups, ages, sexes
    and scores; a subject drawn CN or AD stays so when mci_fraction takes part of the CN share."""
    ids = simulated_subjects(300)
    plain = participants_table(Cohort(n_subjects=300, seed=6), ids)
    mixed = participants_table(Cohort(n_subjects=300, seed=6, mci_fraction=0.3), ids)
    assert set(plain.group) == {"CN", "AD"}
    assert plain.group.eq("AD").equals(mixed.group.eq("AD"))
    kept = mixed.group.eq(plain.group)
    assert kept.mean() > 0.5 and (plain.group[~kept] == "CN").all()
    columns = ["participant_id", "age", "sex", "education_years"]
    assert plain[columns].equals(mixed[columns])


def test_mci_design_keys_from_config():
    design = from_config({"mci_fraction": 0.4, "amyloid_positive": {"MCI": 0.7},
                          "conversion_risk": {"amyloid_negative": 0.1}})
    assert design.mci_fraction == 0.4 and design.amyloid_positive == (0.25, 0.7, 0.9)
    assert design.conversion_risk == (0.6, 0.1)
    with pytest.raises(ValueError, match=r"cohort\.amyloid_positive\.pMCI"):
        from_config({"amyloid_positive": {"pMCI": 0.5}})
    with pytest.raises(ValueError, match="sum to at most 1"):
        Cohort(ad_fraction=0.6, mci_fraction=0.5)
