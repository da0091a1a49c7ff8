"""The course-table study's mechanics (config/course-table.yaml) on 16 subjects at the tiny study's settings:
both tasks, every classifier on every feature set, clinical variables from participants.tsv and the imaging
SVMs' out-of-fold scores. The figures of the full study are docs/models.md's; this checks that each job runs
on the right subjects with the right columns."""
import pandas as pd
import pytest
from workflow_runner import REPO, snakemake

pytestmark = pytest.mark.slow

CONFIGS = [REPO / "config" / "course-table.yaml", REPO / "config" / "tiny.yaml",
           {"cohort": {"n_subjects": 16, "seed": 3}, "model": {"cv_repeats": 2},
            "segmentation": {"unet": {"train": False}}}]
# Seed 3 gives 4 subjects of each group among 16 (ad_fraction 0.25, mci_fraction 0.5): the fewest for which
# each 2-fold training fold holds 2 subjects per class, as the out-of-fold SVM scores need.


@pytest.fixture(scope="module")
def course_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("course")
    snakemake(workdir, "--cores", "2", "results/group/metrics.tsv", configs=CONFIGS)
    group = workdir / "results" / "group"
    participants = pd.read_csv(workdir / "results" / "participants.tsv", sep="\t", dtype={"participant_id": str})
    return workdir, participants, pd.read_csv(group / "metrics.tsv", sep="\t")


def test_every_task_classifier_and_feature_set_has_its_row(course_study):
    _, participants, metrics = course_study
    counts = participants.group.value_counts().to_dict()
    assert counts == {"AD": 4, "CN": 4, "pMCI": 4, "sMCI": 4}
    sets = {"t1_volumes", "pet_suvr", "t1_volumes+pet_suvr", "clinical", "clinical+t1_score",
            "clinical+pet_score", "clinical+t1_and_pet_scores"}
    for task, positive, negative in (("diagnosis", "AD", "CN"), ("prognosis", "pMCI", "sMCI")):
        rows = metrics[metrics.task == task]
        classical = rows[rows.model != "cnn"]
        assert set(classical.features) == sets and set(classical.model) == {"linear_svm", "l1_logistic_regression",
                                                                             "random_forest"}
        assert len(classical) == 3 * len(sets)
        assert sorted(rows[rows.model == "cnn"].features) == ["gm_image", "t1_image"]  # the CNN beside them
        assert (rows.n == counts[positive] + counts[negative]).all() and (rows.n_positive == counts[positive]).all()
        assert rows.balanced_accuracy.between(0, 1).all() and rows.auc.between(0, 1).all()


def test_the_prognosis_splits_hold_the_mci_subjects_only(course_study):
    workdir, participants, _ = course_study
    splits = pd.read_csv(workdir / "results" / "group" / "models" / "prognosis" / "splits.tsv", sep="\t")
    mci = set(participants.participant_id[participants.group.isin(["pMCI", "sMCI"])])
    assert set(splits.participant_id) == mci
    predictions = pd.read_csv(workdir / "results" / "group" / "models" / "prognosis" / "random_forest"
                              / "clinical+t1_score" / "predictions.tsv", sep="\t")
    truth = participants.set_index("participant_id").loc[predictions.participant_id, "group"]
    assert ((truth == "pMCI").astype(int).to_numpy() == predictions.label.to_numpy()).all()


def test_a_score_job_logs_its_columns(course_study):
    workdir, _, _ = course_study
    log = (workdir / "logs" / "cross_validate" / "prognosis" / "linear_svm" / "clinical+t1_and_pet_scores.log")
    text = log.read_text()
    assert "sex, education_years, cognitive_score, cdr_sb, svm_score:t1_volumes, svm_score:pet_suvr" in text
