"""Bad input and unsafe values, as a user meets them through Snakemake.

- a rule script stops on bad input with one line naming the file; with --keep-going every other subject
  finishes, the group stage waits and says for whom, and `cohort.exclude` lets it run;
- subject ids and wildcards cannot leave the output folder; no config value reaches a shell; a config file
  with a Python tag runs nothing.
"""
import hashlib
import shutil

import pandas as pd
import pytest
from conftest import REPO, snakemake
from parsed import parse_workflow

TINY = REPO / "config" / "tiny.yaml"


def lines(result):
    """Lines Snakemake printed (it writes to stdout or stderr depending on where they go)."""
    return (result.stdout + result.stderr).splitlines()


@pytest.fixture(scope="module")
def rules():
    """Every rule as Snakemake parsed it: kind of job and wildcard constraints."""
    return parse_workflow(configfiles=[REPO / "config/config.yaml"])["rules"]


def test_every_rule_runs_a_script_and_no_shell(rules):
    """Config values reach jobs only as Python objects (snakemake.params), never through a shell line."""
    assert len(rules) >= 19
    for name, rule in rules.items():
        kind = rule["kind"]
        assert not kind["shell"] and not kind["run"], name
        assert kind["script"] or (name == "all" and kind["norun"]), name


@pytest.mark.parametrize("value", ["..", "../x", "a/b", "001/../../etc", ".*", ""])
def test_every_wildcard_is_constrained_to_stay_in_its_folder(rules, value):
    import re

    for name, rule in rules.items():
        for wildcard in rule["wildcards"]:
            assert wildcard in rule["constraints"], f"{name}: {{{wildcard}}} has no constraint"
            assert not re.fullmatch(rule["constraints"][wildcard], value), f"{name}: {{{wildcard}}} takes {value!r}"


def test_excluded_subject_ids_must_be_ids(tmp_path):
    result = snakemake(tmp_path, "--dry-run", configs=[{"cohort": {"exclude": ["../x"]}}], check=False)
    assert result.returncode != 0
    assert "config key 'cohort.exclude.0': '../x' does not match '^[a-zA-Z0-9]+$'" in lines(result)


@pytest.mark.parametrize("target", [
    "results/sub-../anat/sub-.._desc-recon_T1w.nii.gz",
    "results/sub-0/1/anat/sub-0/1_desc-recon_T1w.nii.gz",
    "results/group/qc/../../x.png",
])
def test_targets_outside_the_subject_pattern_are_refused(tmp_path, target):
    result = snakemake(tmp_path, "--dry-run", target, check=False)
    assert result.returncode != 0
    assert "MissingRuleException:" in lines(result)
    assert any(line.startswith("No rule to produce results/") for line in lines(result))


def test_config_file_with_a_python_tag_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"cohort:\n  seed: !!python/object/apply:os.system ['touch {marker}']\n")
    result = snakemake(tmp_path, "--dry-run", configs=[evil], check=False)
    assert result.returncode != 0 and not marker.exists()
    assert any(line.startswith("Config file is not valid JSON or YAML.") for line in lines(result))  # Snakemake's
    evil.write_text("output_dir: !!python/name:os.system\n")  # a Python object, not a call: schema refuses it
    result = snakemake(tmp_path, "--dry-run", configs=[evil], check=False)
    assert result.returncode != 0
    assert "config key 'output_dir': <built-in function system> is not of type 'string'" in lines(result)


# ---------------------------------------------------------------------------------------------------------
# one subject with a corrupt raw file, in a copy of the tiny study


def snapshot(results, subjects):
    """path -> (mtime_ns, sha256) of every file of the given subjects."""
    files = sorted(p for s in subjects for p in (results / f"sub-{s}").rglob("*") if p.is_file())
    return {str(p.relative_to(results)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in files}


GROUP_TABLES = ["features.tsv", "metrics.tsv", "predictions.tsv", "roc.png", "confusion.png", "recon_quality.tsv",
                "registration_quality.tsv", "segmentation_quality.tsv"]


@pytest.mark.slow
def test_keep_going_finishes_other_subjects_and_the_group_stage_waits(tiny_study, tmp_path):
    source, _ = tiny_study
    workdir = tmp_path / "study"
    shutil.copytree(source, workdir, symlinks=True)  # copy2 keeps mtimes: nothing is out of date
    results = workdir / "results"
    shutil.rmtree(results / "group")
    others = ["001", "002", "004", "005", "006"]
    before = snapshot(results, others)
    assert sum(name.endswith("_features.tsv") for name in before) == len(others)

    sinogram = results / "sub-003" / "ct" / "sub-003_sinogram.npz"
    sinogram.write_bytes(sinogram.read_bytes()[: sinogram.stat().st_size // 2])  # newer: reconstruct_ct reruns
    run = snakemake(workdir, "--cores", "2", "--keep-going", configs=[TINY], check=False)
    output = lines(run)
    assert run.returncode != 0
    problem = "results/sub-003/ct/sub-003_sinogram.npz: truncated or corrupt raw data (not a readable .npz archive)"
    assert [line for line in output if line.endswith(f"dlmi ERROR {problem}")], run.stderr[-3000:]
    log = (workdir / "logs" / "reconstruct_ct" / "sub-003.log").read_text().strip().splitlines()
    assert log[-1].endswith(f"dlmi ERROR {problem}")
    assert not any("Traceback" in line for line in output)
    # the summary, read from the job logs: the failed subject, its failed job and that job's ERROR line
    start = output.index("group stage waits for subject 003 (failed); fix it or add it to cohort.exclude")
    assert output[start + 1] == f"  subject 003, reconstruct_ct: {problem} (logs/reconstruct_ct/sub-003.log)"
    assert snapshot(results, others) == before  # other subjects untouched
    assert not (results / "sub-003" / "ct" / "sub-003_desc-fbp_ct.nii.gz").exists()  # no partial output
    for name in GROUP_TABLES:
        assert not (results / "group" / name).exists(), name

    run = snakemake(workdir, "--cores", "2", configs=[TINY, {"cohort": {"exclude": ["003"]}}])
    features = pd.read_csv(results / "group" / "features.tsv", sep="\t")
    assert list(features.participant_id) == [f"sub-{s}" for s in others]
    for name in GROUP_TABLES:
        assert (results / "group" / name).stat().st_size > 0, name
    assert len(list((results / "group" / "qc").glob("*.png"))) == 8  # 7 stages and the U-Net's
    assert snapshot(results, others) == before
