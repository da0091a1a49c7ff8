"""Power and null: the default study detects the disease, and the same study without any group difference
does not. Run at a reduced resolution (4 mm anatomy, 8 mm PET, PET-to-T1 registration at one level) to keep
CI time reasonable; the seed and every effect size are the default study's.

The null study has 40 subjects instead of 20. Out-of-fold balanced accuracy on 20 subjects without any
signal has an SD of about 0.14 per row (simulated with pure-noise features through the model stage's
cross-validation, 10x repeated 5-fold CV), and the rows share their subjects, so a
0.5 +- 0.1 band on their mean is left by chance in a sizeable fraction of 20-subject cohorts: that would
test the seed, not the pipeline. With 40 subjects the per-row SD is about 0.10. Subjects 001-020 are the
same people in both sizes (draws depend only on seed and subject id), and a control subject's anatomy does
not depend on the effect sizes: the null study runs in a copy of the power study, where the controls among
subjects 001-020 keep their simulated and reconstructed images (the test checks that they are not made
again).

The null study registers T1 to the template more lightly than the power study (the affine at two levels, the
velocity field at the coarse level only, 10 iterations): its band resolves the spread of balanced accuracy
under exchangeable groups, which the number of subjects and the cross-validation set, not how well each brain
is registered (no step sees the group). The power study keeps the T1 registration of the reduced default
study, on which the hippocampal volumes depend (with the null's lighter one, logistic regression on T1
volumes fell from 0.85 to 0.80 balanced accuracy, on the bar).
"""
import shutil

import pandas as pd
import pytest
from conftest import snakemake

pytestmark = pytest.mark.slow

REDUCED = {
    "anatomy": {"voxel_mm": 4.0},
    "acquisition": {"pet": {"voxel_mm": 8.0}},
    # the pyramid levels are factors of the voxel size: at 4 mm stop at 8 and 4 mm as the default does at 2 mm
    "registration": {"t1_to_template": {"nonlinear": {"levels": [2, 1], "iterations": [40, 30]}},
                     "pet_to_t1": {"levels": [2], "iterations": [30]}},
}
NULL_EFFECTS = {"anatomy": {"effects": {"hippocampal_atrophy": [0.0, 0.0], "ventricle_enlargement": 0.0,
                                        "fdg_hypometabolism": 0.0, "cognitive_score_drop": 0.0}}}
# The default classifiers and grids, fewer permutations in the power study (its bar is p < 0.05), the
# default 200 in the null study (where a Bonferroni-corrected p < 0.05 over six rows must be possible).
POWER_MODEL = {"model": {"permutations": 50}}
NULL_MODEL = {"model": {"permutations": 200}}
NULL_REGISTRATION = {"registration": {"t1_to_template": {"levels": [2, 1], "iterations": [60, 30],
                                                         "nonlinear": {"levels": [2], "iterations": [10]}}}}


def study_metrics(workdir, *configs) -> pd.DataFrame:
    snakemake(workdir, "--cores", "2", "results/group/metrics.tsv", configs=[REDUCED, POWER_MODEL, *configs])
    return pd.read_csv(workdir / "results" / "group" / "metrics.tsv", sep="\t")


@pytest.fixture(scope="module")
def power_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("power")
    return workdir, study_metrics(workdir)


LINEAR = ["linear_svm", "l1_logistic_regression"]


def test_default_study_detects_the_disease_on_t1_volumes(power_study):
    _, metrics = power_study
    t1 = metrics[metrics.features == "t1_volumes"].set_index("model")
    assert sorted(t1.index) == sorted(LINEAR + ["random_forest"]), metrics
    linear = t1.loc[LINEAR]
    assert (linear.balanced_accuracy >= 0.8).all(), t1.to_string()
    assert (linear.balanced_accuracy_ci_low > 0.5).all(), t1.to_string()
    assert (linear.p_permutation < 0.05).all(), t1.to_string()  # POWER_MODEL's 50 permutations: p >= 1/51
    assert t1.loc["random_forest", "balanced_accuracy_ci_low"] > 0.5, t1.to_string()


def test_null_study_is_at_chance(power_study, tmp_path):
    source, _ = power_study
    workdir = tmp_path / "null"
    shutil.copytree(source, workdir, symlinks=True)  # copy2 keeps modification times
    participants = pd.read_csv(workdir / "results" / "participants.tsv", sep="\t", dtype=str)
    shared = [workdir / "results" / p / "anat" / f"{p}_desc-recon_T1w.nii.gz"
              for p in participants.participant_id[participants.group == "CN"]]
    kept = {path: path.stat().st_mtime_ns for path in shared}
    metrics = study_metrics(workdir, NULL_EFFECTS, NULL_REGISTRATION, {"cohort": {"n_subjects": 40}}, NULL_MODEL)
    assert len(metrics) == 10 and "cnn" in set(metrics.model)  # the CNN's row is at chance too
    assert abs(metrics.balanced_accuracy.mean() - 0.5) <= 0.1, metrics.to_string()
    assert not (metrics.balanced_accuracy_ci_low > 0.5).any(), metrics.to_string()
    permuted = metrics.dropna(subset=["p_permutation"])
    assert len(permuted) == 6 and (permuted.permutations == 200).all()
    # Bonferroni over the permuted rows: 200 permutations make p = 1/201 < 0.05 / 6 possible
    assert not (permuted.p_permutation * len(permuted) < 0.05).any(), metrics.to_string()
    assert shared and {path: path.stat().st_mtime_ns for path in shared} == kept  # the controls' images are reused
