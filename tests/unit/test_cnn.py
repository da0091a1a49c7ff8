"""The image models: the CNN learns what an image shows and nothing of its test fold, the model-input images
match the analytic answer of their resampling, and the feature-set rules of image classifiers."""
import numpy as np
import pandas as pd
import pytest
import torch

from dlmi.analysis import cnn, design, images, validation
from dlmi.io import InputError

SHAPE = (12, 14, 12)


def blob_images(n: int, seed: int, contrast: float = 1.5):
    """n noisy images (rows flattened), half of them (label 1) with a brighter block on one side (the left
    hemisphere of the RAS+ grid: small x), and their participant_ids."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    volumes = rng.normal(size=(n, *SHAPE))
    volumes[labels == 1, 2:6, 4:9, 3:8] += contrast
    return volumes.reshape(n, -1), labels, [f"sub-{k:03d}" for k in range(n)]


def fit(features, labels, **settings):
    return cnn.pipeline("cnn", 0, image_shape=SHAPE).set_params(
        **{f"estimator__{k}": v for k, v in settings.items()}).fit(features, labels)


def test_the_cnn_learns_a_block_it_is_shown_and_scores_new_images():
    features, labels, _ = blob_images(40, seed=1)
    fitted = fit(features[::2], labels[::2], epochs=30)
    scores = fitted.decision_function(features[1::2])
    assert validation.balanced_accuracy(labels[1::2], scores) >= 0.9


def test_the_cnn_is_deterministic_given_its_seed():
    features, labels, _ = blob_images(16, seed=2)
    first = fit(features, labels, epochs=3).decision_function(features)
    second = fit(features, labels, epochs=3).decision_function(features)
    np.testing.assert_array_equal(first, second)
    other = cnn.pipeline("cnn", 1, image_shape=SHAPE).set_params(estimator__epochs=3).fit(features, labels)
    assert not np.array_equal(first, other.decision_function(features))


def test_early_stopping_keeps_the_weights_of_the_best_validation_epoch():
    features, labels, _ = blob_images(20, seed=3, contrast=0.3)
    fitted = fit(features, labels, epochs=12, patience=3, learning_rate=0.01)
    estimator = fitted[-1]
    history = np.array(estimator.history_)
    best = int(np.nanargmin(history[:, 2]))
    assert estimator.best_epoch_ == history[best, 0]
    assert len(history) <= estimator.best_epoch_ + 3  # stopped after `patience` epochs without a better one
    # the kept network's loss on the held-out rows is the best epoch's
    train, held_out = estimator._hold_out(labels)
    assert len(held_out) == 4 and not set(train) & set(held_out)
    scaled = fitted[:-1].transform(features[held_out])
    logits = torch.from_numpy(estimator.decision_function(scaled))
    positives = labels[train].sum()
    loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(train) - positives) / positives))(
        logits.float(), torch.tensor(labels[held_out], dtype=torch.float32))
    assert float(loss) == pytest.approx(history[best, 2], rel=1e-5)


@pytest.mark.parametrize(("labels", "held"), [([0, 0, 1, 1], 2), ([0] * 8 + [1] * 8, 4), ([0, 0, 0, 1], 0)])
def test_early_stopping_holds_out_a_stratified_part_of_the_training_rows(labels, held):
    # a fifth of the rows rounded up, at least one per class; none where a class has a single row
    train, held_out = cnn.CnnClassifier()._hold_out(np.array(labels))
    assert len(held_out) == held and sorted([*train, *held_out]) == list(range(len(labels)))
    if held:
        assert set(np.array(labels)[held_out]) == {0, 1}


def test_the_image_scaler_standardises_by_the_training_images_mean_and_sd():
    rows = np.arange(24, dtype=float).reshape(4, 6)
    scaler = cnn.ImageScaler().fit(rows[:2])
    np.testing.assert_allclose(scaler.transform(rows[2:]), (rows[2:] - 5.5) / np.std(np.arange(12.0)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# the spy through the rule's own code, with the CNN's pipeline


def leak_by_normalising_on_everyone(monkeypatch, features):
    """Deliberately leaky: the intensity scaling is fit once on the whole cohort (through the pipeline, so
    the spy in front sees it), and every fold's pipeline reuses it."""
    honest = cnn.pipeline

    def leaky(model, seed, **options):
        pipe = honest(model, seed, **options)
        pipe[:-1].fit(features)
        frozen = pipe.named_steps["scale"]
        monkeypatch.setattr(frozen, "fit", lambda rows, labels=None: frozen)
        return pipe

    return leaky


def leak_by_early_stopping_on_the_test_fold(monkeypatch):
    """Deliberately leaky: the CNN is handed its test fold with its training fold and stops early on it."""
    honest = validation.folds_of
    tests = []

    def folds_of(splits, repeat, ids):
        folds = [(np.union1d(train, test), test) for train, test in honest(splits, repeat, ids)]
        tests.extend(folds)
        return folds

    def hold_out(self, labels):
        everyone, test = tests.pop(0)
        held_out = np.searchsorted(everyone, test)  # the test subjects' rows among the fit's
        return np.setdiff1d(np.arange(len(labels)), held_out), held_out

    monkeypatch.setattr(validation, "folds_of", folds_of)
    monkeypatch.setattr(cnn.CnnClassifier, "_hold_out", hold_out)


@pytest.mark.parametrize("variant", [None, "normalise_on_everyone", "early_stop_on_test_fold"])
def test_no_fit_of_the_cnn_sees_a_subject_of_its_test_fold(monkeypatch, variant):
    x, y, ids = blob_images(16, seed=4)
    features, labels = pd.DataFrame(x, index=ids), pd.Series(y, index=ids)
    splits = validation.stratified_splits(labels, folds=4, repeats=2, seed=0)
    folds = [(list(rows.participant_id[rows.set == "train"]), list(rows.participant_id[rows.set == "test"]))
             for _, rows in splits[splits.repeat == 0].groupby("fold")]
    factory = cnn.pipeline
    if variant == "normalise_on_everyone":
        factory = leak_by_normalising_on_everyone(monkeypatch, x)
    elif variant == "early_stop_on_test_fold":
        leak_by_early_stopping_on_the_test_fold(monkeypatch)
    params = {"task": "diagnosis", "model": "cnn", "grid": {"epochs": [2]}, "features": "t1_image",
              "cv_folds": 4, "inner_folds": 3, "permutations": 0, "bootstrap": 100, "ci_level": 0.9, "repeats": 1}
    log = validation.SpyLog()
    metrics, predictions = validation.evaluate(
        features, labels, splits, params, seed=0,
        factory=validation.spied(log, x, ids, lambda model, seed, **o: factory(model, seed, image_shape=SHAPE, **o)))
    leaks = validation.leaked_fits(log, folds)
    if variant:
        assert leaks, "the spy missed a deliberate leak"
        return
    assert leaks == []
    assert sum(event == "fit" for event, _ in log.records) == len(folds)  # one fit per fold of the one repeat
    assert metrics.repeats.iloc[0] == 1 and len(predictions) == len(ids)


# ---------------------------------------------------------------------------------------------------------
# the images the CNN reads


def test_the_model_grid_covers_the_brain_at_its_voxel_size():
    brain = np.zeros((40, 48, 40))
    brain[10:30, 8:40, 12:28] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-40, -50, -30]
    shape, grid = images.model_grid(brain, affine, 4.0)
    np.testing.assert_allclose(np.diag(grid)[:3], 4.0)
    low = affine @ [10, 8, 12, 1]
    high = affine @ [29, 39, 27, 1]
    first = grid @ [0, 0, 0, 1]
    last = grid @ [*(np.array(shape) - 1), 1]
    assert np.all(first[:3] <= low[:3] - 4.0 + 1e-9) and np.all(last[:3] >= high[:3] + 4.0 - 1e-9)
    assert np.all(last[:3] - high[:3] < 2 * 4.0 + 1e-9)


def test_an_image_on_the_model_grid_is_the_analytic_ramp_through_its_transform():
    # a linear ramp is unchanged by Gaussian smoothing (away from the edges) and exact under trilinear
    # interpolation, so the image on the model grid is the ramp at the transformed points
    source = np.diag([2.0, 2.0, 2.0, 1.0])
    source[:3, 3] = [-40, -48, -36]
    ijk = np.indices((40, 48, 36)).reshape(3, -1).T
    world = np.c_[ijk, np.ones(len(ijk))] @ source.T
    ramp = lambda p: 100 + 0.5 * p[..., 0] - 0.25 * p[..., 1] + 0.1 * p[..., 2]  # noqa: E731
    t1w = ramp(world).reshape(40, 48, 36).astype(np.float32)
    transform = np.eye(4)
    transform[:3, 3] = [3.0, -2.0, 1.5]  # template -> T1w world
    grid = np.diag([4.0, 4.0, 4.0, 1.0])
    grid[:3, 3] = [-20, -24, -16]
    shape = (10, 12, 9)
    out = images.to_model_grid(t1w, source, transform, shape, grid)
    points = np.c_[np.indices(shape).reshape(3, -1).T, np.ones(np.prod(shape))] @ grid.T @ transform.T
    np.testing.assert_allclose(out.ravel(), ramp(points), rtol=1e-5)


def test_intensity_normalisation_divides_by_the_brain_median():
    image = np.full((4, 4, 4), 7.0)
    image[0] = 100.0
    mask = np.zeros((4, 4, 4), bool)
    mask[1:] = True
    np.testing.assert_allclose(images.normalise_intensity(image, mask)[1:], 1.0)
    with pytest.raises(ValueError, match="median"):
        images.normalise_intensity(np.zeros((4, 4, 4)), mask)


# ---------------------------------------------------------------------------------------------------------
# image feature sets and which classifier runs on which set

SETS = {"t1_volumes": ["hippocampus_L_ml"], "t1_image": ["image:T1w"], "pet_suvr": ["suvr_temporal"]}


def test_each_classifier_runs_on_the_sets_of_its_kind_unless_it_lists_others():
    kept = {k: v for k, v in SETS.items() if k != "pet_suvr"}  # a study without PET
    assert design.classifier_feature_sets("linear_svm", {}, kept, SETS) == ["t1_volumes"]
    assert design.classifier_feature_sets("cnn", {}, kept, SETS) == ["t1_image"]
    listed = {"feature_sets": ["pet_suvr", "t1_image"]}  # a voxel-wise SVM; PET is left out here
    assert design.classifier_feature_sets("linear_svm", listed, kept, SETS) == ["t1_image"]


@pytest.mark.parametrize(("classifier", "listed", "problem"), [
    ("cnn", ["t1_volumes"], "cnn reads images, and 't1_volumes' is not an image feature set"),
    ("random_forest", ["t2_image"], "'t2_image' is not a feature set"),
])
def test_a_classifier_s_unsuitable_feature_set_names_the_config_key(classifier, listed, problem):
    with pytest.raises(ValueError, match=f"model.classifiers.{classifier}.feature_sets: {problem}"):
        design.classifier_feature_sets(classifier, {"feature_sets": listed}, SETS, SETS)


@pytest.mark.parametrize(("entries", "problem"), [
    (["image:T1w", "icv_ml"], "an image feature set holds one image and nothing else"),
    (["image:FLAIR"], "unknown image 'image:FLAIR'"),
])
def test_a_bad_image_feature_set_names_the_config_key(entries, problem):
    with pytest.raises(ValueError, match=f"model.feature_sets.bad: {problem}"):
        design.check_feature_set("bad", entries)
    with pytest.raises(ValueError, match="scores an image feature set"):
        design.score_inputs({"a": ["svm_score:t1_image"], **SETS}, "a")


def test_images_of_absent_subjects_name_the_file(tmp_path):
    from dlmi import io

    path = tmp_path / "images.npz"
    io.save_npz(path, {}, images=np.zeros((2, *SHAPE), np.float32), participant_id=np.array(["sub-1", "sub-2"]))
    rows, shape = design.read_images(path, ["sub-2", "sub-1"], "t1_image")
    assert shape == SHAPE and list(rows.index) == ["sub-2", "sub-1"] and rows.shape == (2, np.prod(SHAPE))
    with pytest.raises(InputError, match=r"images.npz: no image of sub-3 \(feature set 't1_image'\)"):
        design.read_images(path, ["sub-1", "sub-3"], "t1_image")
