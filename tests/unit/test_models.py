"""The group models and their validation: nested CV against scikit-learn's own nesting, the splits, the
bootstrap CIs against scikit-learn's metrics on the same resamples, permutation p-values, and the spy that
proves no fit saw a subject of its test fold (and catches deliberately leaky variants)."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, PredefinedSplit, StratifiedKFold, cross_val_predict

from dlmi.analysis import models, tasks, validation
from dlmi.io import InputError

GRIDS = {"linear_svm": {"C": [0.01, 0.1, 1.0]}, "l1_logistic_regression": {"C": [0.1, 1.0, 10.0]},
         "random_forest": {"max_features": ["sqrt", 1.0], "n_estimators": [20]}}


def make_data(n=40, shift=1.5, seed=0):
    """Features (subjects x 3: one informative column among three of very different scales), balanced
    labels and the participant_ids."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    features = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1]
    features[:, 0] += shift * labels
    return features, labels, [f"sub-{k:03d}" for k in range(n)]


def splits_of(labels, ids, folds, repeats, seed):
    return validation.stratified_splits(pd.Series(labels, index=ids), folds=folds, repeats=repeats, seed=seed)


@pytest.mark.parametrize("model", list(models.ESTIMATORS))
def test_nested_cv_equals_scikit_learns_nesting(model):
    # the same outer folds (PredefinedSplit of our split) and inner splitter: GridSearchCV inside
    # cross_val_predict is scikit-learn's own nested CV
    features, labels, ids = make_data()
    splits = splits_of(labels, ids, 5, 1, 3)
    ours, chosen = validation.nested_cv_scores(features, labels, validation.folds_of(splits, 0, ids), model,
                                               GRIDS[model], inner_folds=3, seed=3)
    test = splits[splits.set == "test"].set_index("participant_id").loc[ids, "fold"].to_numpy()
    search = GridSearchCV(models.pipeline(model, 3), models.grid_parameters(GRIDS[model]),
                          scoring="balanced_accuracy", cv=StratifiedKFold(3, shuffle=True, random_state=3))
    method = "predict_proba" if model == "random_forest" else "decision_function"
    peer = cross_val_predict(search, features, labels, cv=PredefinedSplit(test), method=method)
    peer = peer[:, 1] - 0.5 if model == "random_forest" else peer
    np.testing.assert_allclose(ours, peer, rtol=1e-10, atol=1e-12)
    assert len(chosen) == 5 and all(set(c) == set(models.grid_parameters(GRIDS[model])) for c in chosen)


def test_a_one_point_grid_is_fit_without_an_inner_cv():
    features, labels, _ = make_data(n=4)  # 2 per class: too few to tune with 3 inner folds
    fitted, chosen = validation.fit_tuned(features, labels, "linear_svm", {"C": [0.5]}, inner_folds=3, seed=0)
    assert chosen == {"estimator__C": 0.5} and fitted.named_steps["estimator"].C == 0.5


def test_repeats_average_the_out_of_fold_scores():
    features, labels, ids = make_data()
    splits = splits_of(labels, ids, 5, 3, 7)
    mean, per_repeat, chosen = validation.cross_validated_scores(features, labels, ids, splits, "linear_svm",
                                                                 {"C": [1.0]}, inner_folds=3, seed=7)
    singles = [validation.nested_cv_scores(features, labels, validation.folds_of(splits, r, ids), "linear_svm",
                                           {"C": [1.0]}, inner_folds=3, seed=7)[0] for r in range(3)]
    np.testing.assert_allclose(mean, np.mean(singles, axis=0), rtol=1e-12)
    assert per_repeat.shape == (40, 3) and len(chosen) == 15


# ---------------------------------------------------------------------------------------------------------
# splits


def test_splits_are_stratified_and_each_subject_is_tested_once_per_repeat():
    labels = np.array([1] * 13 + [0] * 10)
    ids = [f"sub-{k:03d}" for k in range(23)]
    splits = splits_of(labels, ids, 5, 4, 1)
    validation.check_splits(splits, ids, "splits.tsv")
    folds = {repeat: validation.folds_of(splits, repeat, ids) for repeat in range(4)}
    for repeat in range(4):
        assert sorted(k for _, test in folds[repeat] for k in test) == list(range(23))
        positives = [int(labels[test].sum()) for _, test in folds[repeat]]
        assert max(positives) - min(positives) <= 1
        for train, test in folds[repeat]:
            assert not set(train) & set(test) and len(train) + len(test) == 23
    # the repeats differ, and repeat r is scikit-learn's StratifiedKFold with random_state seed + r
    assert [list(t) for _, t in folds[0]] != [list(t) for _, t in folds[1]]
    peer = StratifiedKFold(5, shuffle=True, random_state=1 + 2).split(np.zeros((23, 1)), labels)
    assert [list(test) for _, test in peer] == [sorted(t) for _, t in folds[2]]


@pytest.mark.parametrize("edit, problem", [
    (lambda s: pd.concat([s, s[(s.set == "test")].head(1).assign(set="train")]), "in both train and test"),
    (lambda s: s[s.participant_id != "sub-003"], "the subjects differ from the task's (sub-003)"),
    (lambda s: s.assign(fold=np.where((s.participant_id == "sub-000") & (s.set == "test"), 99, s.fold)),
     "the subjects differ"),
])
def test_bad_splits_are_refused(edit, problem):
    _, labels, ids = make_data(n=10)
    splits = splits_of(labels, ids, 2, 2, 0)
    with pytest.raises(InputError) as err:
        validation.check_splits(edit(splits), ids, "splits.tsv")
    assert str(err.value).startswith("splits.tsv: repeat 0")
    assert problem in str(err.value)


def test_a_class_smaller_than_the_folds_names_the_task():
    labels = pd.Series([1, 1, 1] + [0] * 7, index=[f"sub-{k}" for k in range(10)])
    with pytest.raises(InputError) as err:
        tasks.check_class_sizes(labels, 5, "diagnosis")
    assert str(err.value) == ("task diagnosis: 3 AD subject(s), fewer than the 5 cross-validation folds "
                              "(config key model.cv_folds)")


def test_an_unknown_grid_parameter_names_the_config_key():
    features, labels, ids = make_data()
    with pytest.raises(InputError) as err:
        validation.cross_validated_scores(features, labels, ids, splits_of(labels, ids, 5, 1, 0), "linear_svm",
                                          {"gamma_typo": [1, 2]}, inner_folds=3, seed=0)
    assert str(err.value) == "config key model.classifiers.linear_svm: linear_svm has no parameter 'gamma_typo'"


# ---------------------------------------------------------------------------------------------------------
# metrics and their CIs


def test_bootstrap_cis_equal_scikit_learns_metrics_on_the_same_resamples():
    _, y, _ = make_data(n=30, shift=1.0)
    rng = np.random.default_rng(5)
    scores = y * 1.0 + rng.normal(size=30)
    scores[:4] = scores[4]  # ties, which the AUC counts as 1/2
    ours = models.bootstrap_cis(y, scores, n_boot=300, level=0.9, seed=11)
    draws = np.random.default_rng(11)  # the same draws, in the same order, as bootstrap_cis makes them
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    d1 = draws.integers(0, len(positives), (300, len(positives)))
    d0 = draws.integers(0, len(negatives), (300, len(negatives)))
    peer = {name: [] for name in models.METRICS}
    for b in range(300):
        idx = np.r_[positives[d1[b]], negatives[d0[b]]]
        yy, ss = y[idx], scores[idx]
        pred = (ss > 0).astype(int)
        peer["balanced_accuracy"].append(balanced_accuracy_score(yy, pred))
        peer["auc"].append(roc_auc_score(yy, ss))
        peer["accuracy"].append(accuracy_score(yy, pred))
        peer["sensitivity"].append(recall_score(yy, pred, pos_label=1))
        peer["specificity"].append(recall_score(yy, pred, pos_label=0))
    for name in models.METRICS:
        np.testing.assert_allclose(ours[name], np.quantile(peer[name], [0.05, 0.95]), rtol=1e-12, err_msg=name)


def test_metrics_and_their_cis_on_a_clear_effect():
    features, labels, ids = make_data(n=60, shift=3.0)
    splits = splits_of(labels, ids, 5, 1, 0)
    scores, _ = validation.nested_cv_scores(features, labels, validation.folds_of(splits, 0, ids), "linear_svm",
                                            GRIDS["linear_svm"], inner_folds=3, seed=0)
    metrics = models.classification_metrics(labels, scores)
    assert metrics["balanced_accuracy"] == pytest.approx((metrics["sensitivity"] + metrics["specificity"]) / 2)
    assert metrics["balanced_accuracy"] == pytest.approx(validation.balanced_accuracy(labels, scores))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, scores > 0))
    cis = models.bootstrap_cis(labels, scores, n_boot=2000, level=0.95, seed=0)
    for name in models.METRICS:
        low, high = cis[name]
        assert low <= metrics[name] <= high, name
    assert cis["balanced_accuracy"][0] > 0.7  # a 3-SD effect on 60 subjects is detected


def test_the_ci_covers_chance_for_random_predictions():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 20)
    covered = 0
    for _ in range(40):
        cis = models.bootstrap_cis(labels, rng.normal(size=40), n_boot=500, level=0.95, seed=0)
        covered += cis["balanced_accuracy"][0] <= 0.5 <= cis["balanced_accuracy"][1]
    assert covered >= 34  # nominal 95 %: at least 85 % of 40 random predictors cover chance


# ---------------------------------------------------------------------------------------------------------
# permutation p-values


def test_permutation_p_value_of_a_clear_effect_is_the_smallest_possible():
    features, labels, _ = make_data(n=30, shift=4.0)
    p, null = validation.permutation_p_value(features, labels, 1.0, "linear_svm", {"C": [1.0]}, folds=5,
                                             inner_folds=3, permutations=39, seed=0)
    assert p == pytest.approx(1 / 40) and null.max() < 1.0


def test_permutation_p_values_are_uniform_without_an_effect():
    # 30 pure-noise cohorts, 9 permutations each: p takes the values k/10, and under the null
    # P(p <= k/10) <= k/10 (ties between balanced accuracies make the test slightly conservative)
    ps = []
    for cohort in range(30):
        features, labels, ids = make_data(n=20, shift=0.0, seed=100 + cohort)
        splits = splits_of(labels, ids, 5, 1, cohort)
        scores, _ = validation.nested_cv_scores(features, labels, validation.folds_of(splits, 0, ids), "linear_svm",
                                                {"C": [1.0]}, inner_folds=3, seed=cohort)
        observed = validation.balanced_accuracy(labels, scores)
        ps.append(validation.permutation_p_value(features, labels, observed, "linear_svm", {"C": [1.0]},
                                                 folds=5, inner_folds=3, permutations=9, seed=cohort)[0])
    ps = np.array(ps)
    assert 0.4 <= ps.mean() <= 0.7, ps  # uniform on the grid: mean 0.55 (SD of the mean of 30: 0.05)
    assert (ps <= 0.1).sum() <= 7, ps  # at most 3 expected; 7 or more has probability 0.03


# ---------------------------------------------------------------------------------------------------------
# the spy


def test_the_spy_sees_every_fit_of_the_nested_cv_and_no_fit_sees_its_test_fold():
    features, labels, ids = make_data()
    splits = splits_of(labels, ids, 5, 2, 0)
    log = validation.SpyLog()
    validation.cross_validated_scores(features, labels, ids, splits, "linear_svm", GRIDS["linear_svm"],
                                      inner_folds=3, seed=0, factory=validation.spied(log, features, ids))
    fits = [s for event, s in log.records if event == "fit"]
    assert len(fits) == 2 * 5 * (3 + 1)  # each outer fold: the scaling of 3 inner folds, and the refit
    assert validation.leaked_fits(log, id_folds(splits, (0, 1))) == []


def test_the_spy_catches_a_model_fit_on_every_subject():
    features, labels, ids = make_data()
    splits = splits_of(labels, ids, 5, 1, 0)
    log = validation.SpyLog()
    leaky = [(np.arange(40), test) for _, test in validation.folds_of(splits, 0, ids)]  # "train" on everyone
    validation.nested_cv_scores(features, labels, leaky, "linear_svm", {"C": [1.0]}, inner_folds=3, seed=0,
                                factory=validation.spied(log, features, ids))
    folds = id_folds(splits, (0,))
    leaks = validation.leaked_fits(log, folds)
    assert sorted({k for k, _ in leaks}) == [0, 1, 2, 3, 4]  # every fold's fit saw its own test subjects
    assert all(subjects == sorted(folds[k][1]) for k, subjects in leaks)


def id_folds(splits, repeats):
    """The (train ids, test ids) of each fold of the repeats, in the order the CV runs them."""
    return [(list(rows.participant_id[rows.set == "train"]), list(rows.participant_id[rows.set == "test"]))
            for repeat in repeats for _, rows in splits[splits.repeat == repeat].groupby("fold")]


# ---------------------------------------------------------------------------------------------------------
# the spy through the rule's own code: cross_validate.evaluate with a spied pipeline factory

def leak_by_training_on_everyone(monkeypatch):
    """Deliberately leaky: every outer fold "trains" on the whole cohort, its test subjects included."""
    honest = validation.folds_of
    monkeypatch.setattr(validation, "folds_of", lambda splits, repeat, ids: [
        (np.union1d(train, test), test) for train, test in honest(splits, repeat, ids)])


def leak_by_tuning_on_everyone(monkeypatch, features, labels):
    """Deliberately leaky: the hyperparameters are tuned on the whole cohort, then each fold is fit with them."""
    honest = validation.fit_tuned

    def tuned_outside(f, y, model, grid, *, inner_folds, seed, factory):
        _, chosen = honest(features, labels, model, grid, inner_folds=inner_folds, seed=seed, factory=factory)
        fixed = {name.removeprefix("estimator__"): [value] for name, value in chosen.items()}
        return honest(f, y, model, fixed, inner_folds=inner_folds, seed=seed, factory=factory)

    monkeypatch.setattr(validation, "fit_tuned", tuned_outside)


@pytest.mark.parametrize("variant", [None, "train_on_everyone", "tune_on_everyone"])
@pytest.mark.parametrize("model", ["linear_svm", "random_forest"])
def test_no_fit_of_the_rule_sees_a_subject_of_its_test_fold(monkeypatch, variant, model):
    # A spy injected through the rule's own pipeline factory records the subjects of every fit (the scaling
    # and the estimator of each inner-CV fit of the tuner and of the refit); none may hold a subject of the
    # test fold it belongs to. The same check fails on the deliberately leaky variants.
    x, y, ids = make_data(n=24, shift=1.0)
    features, labels = pd.DataFrame(x, index=ids), pd.Series(y, index=ids)
    splits = splits_of(y, ids, 4, 2, 0)
    folds = id_folds(splits, (0, 1))
    if variant == "train_on_everyone":
        leak_by_training_on_everyone(monkeypatch)
    elif variant == "tune_on_everyone":
        leak_by_tuning_on_everyone(monkeypatch, x, y)
    grid = {"C": [0.01, 1.0]} if model == "linear_svm" else {"max_features": [1, 3], "n_estimators": [5]}
    params = {"task": "diagnosis", "model": model, "grid": grid, "features": "abc", "cv_folds": 4,
              "inner_folds": 3, "permutations": 0, "bootstrap": 100, "ci_level": 0.9}
    log = validation.SpyLog()
    validation.evaluate(features, labels, splits, params, seed=0,
                                           factory=validation.spied(log, x, ids))
    leaks = validation.leaked_fits(log, folds)
    if variant is None:
        assert leaks == []
        assert sum(event == "fit" for event, _ in log.records) == len(folds) * (3 + 1)
    else:
        assert leaks, "the spy missed a deliberate leak"


# ---------------------------------------------------------------------------------------------------------
# out-of-fold SVM scores (the course's "clinical + imaging score" rows)


def test_svm_scores_are_out_of_fold_on_the_training_rows_and_refit_for_new_rows():
    # the peer: scikit-learn's cross_val_predict of the same scaled linear SVM on the same folds, and a fit
    # on every training row for the rows it never saw
    features, labels, _ = make_data(n=30, seed=4)
    new = make_data(n=10, seed=5)[0]
    step = models.SvmScores([0], [[1, 2], [0, 2]], folds=3, seed=11)
    seen = step.fit_transform(features, labels)
    unseen = step.transform(new)
    cv = StratifiedKFold(3, shuffle=True, random_state=11)
    for k, group in enumerate([[1, 2], [0, 2]]):
        svm = models.pipeline("linear_svm", 11)
        peer = cross_val_predict(svm, features[:, group], labels, cv=cv, method="decision_function")
        np.testing.assert_allclose(seen[:, 1 + k], peer, rtol=1e-10, atol=1e-12)
        refit = svm.fit(features[:, group], labels).decision_function(new[:, group])
        np.testing.assert_allclose(unseen[:, 1 + k], refit, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(seen[:, 0], features[:, 0])
    np.testing.assert_array_equal(unseen[:, 0], new[:, 0])


def test_svm_scores_refuse_a_class_too_small_to_split():
    features = make_data(n=6)[0]
    with pytest.raises(InputError, match="a training fold has 1 subject"):
        models.SvmScores([0], [[1]], folds=3).fit_transform(features[:4], np.array([0, 0, 0, 1]))


def leak_by_scoring_on_everyone(monkeypatch, features, labels):
    """Deliberately leaky: the imaging score's SVM is fit once on the whole cohort, test folds included,
    and its scores feed every fold's model (a score computed before the cross-validation)."""
    def fit_transform(self, f, y=None):
        self.svms_ = [self._svm(group).fit(features, labels) for group in self.groups]
        return self.transform(f)

    monkeypatch.setattr(models.SvmScores, "fit_transform", fit_transform)


@pytest.mark.parametrize("variant", [None, "score_on_everyone"])
@pytest.mark.parametrize("model", ["random_forest", "l1_logistic_regression"])
def test_no_fit_of_an_imaging_score_sees_a_subject_of_its_test_fold(monkeypatch, variant, model):
    # the feature set "a + the SVM score of (b, c)": the spy of the rule's factory stands in front of the
    # score's SVMs too, so their fits (out of fold and refit, in the tuner's inner CV and in each refit) are
    # recorded, and the leaky variant is caught
    x, y, ids = make_data(n=24, shift=1.0)
    features, labels = pd.DataFrame(x, index=ids, columns=["a", "b", "c"]), pd.Series(y, index=ids)
    splits = splits_of(y, ids, 4, 2, 0)
    folds = id_folds(splits, (0, 1))
    if variant:
        leak_by_scoring_on_everyone(monkeypatch, x, y)
    grid = {"C": [0.1, 1.0]} if model == "l1_logistic_regression" else {"max_features": [1], "n_estimators": [5]}
    params = {"task": "diagnosis", "model": model, "grid": grid, "features": "a+score", "cv_folds": 4,
              "inner_folds": 3, "permutations": 0, "bootstrap": 100, "ci_level": 0.9,
              "columns": ["a", "svm_score:bc"], "scores": {"svm_score:bc": ["b", "c"]}}
    log = validation.SpyLog()
    metrics, _ = validation.evaluate(features, labels, splits, params, seed=0,
                                                        factory=validation.spied(log, x, ids))
    leaks = validation.leaked_fits(log, folds)
    if variant:
        assert leaks, "the spy missed a score fit on the whole cohort"
        return
    assert leaks == []
    each_fit = 1 + 3 + 1  # the pipeline's, and its score step's: 3 out-of-fold SVMs and the refit
    tunings = 0 if model == "random_forest" else 3  # a one-point grid is fit directly, without an inner CV
    assert sum(event == "fit" for event, _ in log.records) == len(folds) * (tunings + 1) * each_fit
    assert metrics.balanced_accuracy.iloc[0] > 0.6  # column a carries the signal
