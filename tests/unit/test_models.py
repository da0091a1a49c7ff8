import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from dlmi.analysis import models


def make_data(n=40, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    features = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1]
    features[:, 0] += shift * labels
    return features, labels


@pytest.mark.parametrize("model", list(models.CLASSIFIERS))
def test_out_of_fold_scores_match_scikit_learn(model):
    features, labels = make_data()
    ours = models.cross_validated_scores(features, labels, model, folds=5, seed=3)
    folds = StratifiedKFold(5, shuffle=True, random_state=3)
    peer = cross_val_predict(models.classifier(model, 3), features, labels, cv=folds, method="decision_function")
    np.testing.assert_allclose(ours, peer, rtol=1e-10, atol=1e-12)


def test_scaling_is_fit_inside_the_training_fold():
    # A feature whose test-fold values are huge: a scaler fit on all subjects would shrink them; one fit on
    # the training fold does not, so the pipeline must be refit per fold (same as scikit-learn's).
    pipeline = models.classifier("logistic_regression", 0)
    assert [name for name, _ in pipeline.steps] == ["standardscaler", "logisticregression"]


def test_metrics_and_ci():
    features, labels = make_data(n=60, shift=3.0)
    scores = models.cross_validated_scores(features, labels, "linear_svm", folds=5, seed=0)
    metrics = models.classification_metrics(labels, scores)
    predicted = (scores > 0).astype(int)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx((metrics["sensitivity"] + metrics["specificity"]) / 2)
    low, high = models.balanced_accuracy_ci(labels, predicted, n_boot=2000, level=0.95, seed=0)
    assert low < metrics["balanced_accuracy"] < high
    assert low > 0.7  # a 3-SD effect on 60 subjects is detected


def test_ci_covers_chance_on_null_data():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 20)
    covered = 0
    for _ in range(40):
        predicted = rng.integers(0, 2, size=40)
        low, high = models.balanced_accuracy_ci(labels, predicted, n_boot=500, level=0.95, seed=0)
        covered += low <= 0.5 <= high
    assert covered >= 34  # nominal 95 %: at least 85 % of 40 random predictors cover chance


def test_too_few_subjects_per_group_is_an_error():
    features, labels = make_data(n=6)
    labels[:] = 0
    labels[0] = 1
    with pytest.raises(ValueError, match="at least 2 subjects"):
        models.cross_validated_scores(features, labels, "linear_svm", folds=5, seed=0)


def test_repeated_cv_averages_out_of_fold_scores():
    features, labels = make_data()
    single = [models.cross_validated_scores(features, labels, "linear_svm", folds=5, seed=s) for s in (7, 8, 9)]
    repeated = models.cross_validated_scores(features, labels, "linear_svm", folds=5, seed=7, repeats=3)
    np.testing.assert_allclose(repeated, np.mean(single, axis=0), rtol=1e-12)
