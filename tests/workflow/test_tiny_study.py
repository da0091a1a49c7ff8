"""A tiny end-to-end study (config/tiny.yaml): every output, table and figure, checked for content."""
import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def read(path):
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str})


def test_outputs_and_report_exist(tiny_study):
    workdir, _ = tiny_study
    results = workdir / "results"
    for name in ("features.tsv", "metrics.tsv", "recon_quality.tsv", "registration_quality.tsv",
                 "segmentation_quality.tsv", "roc.png"):
        assert (results / "group" / name).stat().st_size > 0, name
    assert (results / "report.html").stat().st_size > 10_000
    assert len(list((results / "group" / "qc").glob("*.png"))) == 8  # with the U-Net's


def test_participants_and_features(tiny_study):
    workdir, _ = tiny_study
    participants = read(workdir / "results" / "participants.tsv")
    assert list(participants.columns) == ["participant_id", "group", "age", "sex", "cognitive_score", "cdr_sb",
                                          "education_years", "amyloid", "subtype"]
    assert len(participants) == 6 and set(participants.group) <= {"CN", "AD"}
    features = read(workdir / "results" / "group" / "features.tsv")
    assert list(features.participant_id) == list(participants.participant_id)
    assert features.filter(like="hippocampus").filter(like="_ml").min().min() > 1.0  # mL, both sides
    assert features.icv_ml.between(900, 2200).all()
    suvr = features.filter(like="suvr_")
    assert ((suvr > 0.5) & (suvr < 2.0)).all().all()


METRICS = ["balanced_accuracy", "auc", "accuracy", "sensitivity", "specificity"]


def test_metrics_table(tiny_study):
    workdir, _ = tiny_study
    group = workdir / "results" / "group"
    metrics = read(group / "metrics.tsv")
    assert list(metrics.columns) == ["task", "model", "features", "n", "n_positive",
                                     *[f"{m}{s}" for m in METRICS for s in ("", "_ci_low", "_ci_high")],
                                     "balanced_accuracy_repeat0", "p_permutation", "permutations", "repeats",
                                     "hyperparameters"]
    assert len(metrics) == 10 and set(metrics.task) == {"diagnosis"}
    assert set(metrics.model) == {"linear_svm", "l1_logistic_regression", "random_forest", "cnn"}
    cnn = metrics.set_index("model").loc["cnn"]  # one run of the folds, no permutations (the default)
    assert cnn.features == "t1_image" and cnn.repeats == 1 and cnn.permutations == 0
    assert (metrics.repeats[metrics.model != "cnn"] == 10).all()
    for m in METRICS:
        assert ((metrics[f"{m}_ci_low"] <= metrics[m]) & (metrics[m] <= metrics[f"{m}_ci_high"])).all(), m
    # p-values on the permutation grid of each permuted row: k / (1 + permutations), k >= 1
    permuted = metrics[metrics.permutations > 0]
    assert len(permuted) == 9 and metrics.p_permutation.isna().sum() == 1
    k = permuted.p_permutation * (1 + permuted.permutations)
    assert (k.round() >= 1).all() and (k - k.round()).abs().max() < 1e-4  # the TSV keeps 6 digits
    assert (group / "confusion.png").stat().st_size > 0


def test_one_set_of_splits_serves_every_model(tiny_study):
    workdir, _ = tiny_study
    models = workdir / "results" / "group" / "models" / "diagnosis"
    splits = read(models / "splits.tsv")
    participants = read(workdir / "results" / "participants.tsv")
    for (repeat, fold), rows in splits.groupby(["repeat", "fold"]):
        train = set(rows.participant_id[rows.set == "train"])
        test = set(rows.participant_id[rows.set == "test"])
        assert not train & test and train | test == set(participants.participant_id), (repeat, fold)
    predictions = read(workdir / "results" / "group" / "predictions.tsv")
    assert len(predictions) == 10 * len(participants)
    jobs = sorted(p.relative_to(models).as_posix() for p in models.glob("*/*/metrics.tsv"))
    assert len(jobs) == 10 and "linear_svm/t1_volumes+pet_suvr/metrics.tsv" in jobs and "cnn/t1_image/metrics.tsv" in jobs


def test_quality_tables(tiny_study):
    workdir, _ = tiny_study
    recon = read(workdir / "results" / "group" / "recon_quality.tsv")
    assert set(recon.modality) == {"mri", "ct", "pet"}
    assert (recon.nrmse < 0.25).all() and (recon.psnr_db > 15).all()
    registration = read(workdir / "results" / "group" / "registration_quality.tsv")
    pet = registration[registration.registration == "pet_to_t1"]
    assert (pet.corner_error_mm < 8.0).all()  # half a PET voxel (8 mm) at the tiny study's resolution
    segmentation = read(workdir / "results" / "group" / "segmentation_quality.tsv")
    assert {"method", "structure", "dice", "hd95_mm", "volume_error_percent"} <= set(segmentation.columns)
    # both methods, every subject, every structure (the tiny study's U-Net is a two-step smoke test: its
    # figures are not checked, only that it is scored like the atlas method)
    rows = segmentation.groupby("method").structure.apply(set).to_dict()
    assert rows["atlas"] == {"csf", "gm", "wm", "hippocampus_L", "hippocampus_R", "ventricle_L", "ventricle_R"}
    assert rows["unet"] == rows["atlas"]
    assert segmentation.groupby("method").participant_id.nunique().to_dict() == {"atlas": 6, "unet": 6}
    atlas = segmentation[segmentation.method == "atlas"]
    assert (atlas.dice > 0.25).all() and (atlas.hd95_mm < 20).all()  # measured: CSF Dice 0.32-0.36, HD95 <= 9.8 mm


def test_unet_training_smoke(tiny_study):
    """The training rule ran (two epochs of one step) and wrote a checkpoint that the inference rule read,
    a history with a loss and a validation Dice per class, and its figure."""
    workdir, _ = tiny_study
    unet_dir = workdir / "results" / "training" / "unet"
    history = read(unet_dir / "history.tsv")
    assert list(history.epoch) == [1, 2] and (history.loss > 0).all()
    assert {f"dice_{name}" for name in ("csf", "gm", "wm", "hippocampus_L", "ventricle_R")} <= set(history.columns)
    assert (unet_dir / "unet.pt").stat().st_size > 1_000_000 and (unet_dir / "training.png").stat().st_size > 0
    from dlmi.segment import unet  # the metadata sidecar read at parse time is the checkpoint's own metadata

    _, metadata = unet.load_checkpoint(unet_dir / "unet.pt", unet.checked_metadata(4.0))
    assert json.loads((unet_dir / "unet.json").read_text()) == metadata
    assert metadata["training"]["steps_per_epoch"] is None and len(metadata["history"]) == 2


def test_rerun_has_nothing_to_do(tiny_study):
    from conftest import REPO, snakemake

    workdir, _ = tiny_study
    result = snakemake(workdir, "--dry-run", "--cores", "2", configs=[REPO / "config" / "tiny.yaml"])
    assert "Nothing to be done" in result.stdout + result.stderr
