"""Partial re-execution: after a change, a dry-run of a finished study lists exactly the jobs downstream of
the change, and no others. Each test edits a copy of the checkout and of the finished tiny study.

The expected set is computed independently of Snakemake's own decision: the jobs the change touches (the
seeds), then every job that reads a file written by an expected job, read off the `--forceall` listing."""
import modulefinder
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SNAKEMAKE
from parsed import parse_workflow

from dlmi_workflow import sources
from dlmi_workflow.snakemake_interface import listed_jobs

pytestmark = pytest.mark.slow


def key(job):
    return job["rule"], job["wildcards"]


def downstream(jobs: list[dict], seeds: set) -> set:
    """Seeds and every job that reads, directly or not, a file one of them writes."""
    found = set(seeds)
    changed = True
    while changed:
        written = {f for job in jobs if key(job) in found for f in job["output"]}
        grown = found | {key(job) for job in jobs if job["input"] & written}
        changed, found = grown != found, grown
    return found


@pytest.fixture
def copies(tiny_study, tmp_path):
    """A copy of the checkout and of the finished tiny study (modification times kept)."""
    workdir, _ = tiny_study
    repo = tmp_path / "repo"
    for part in ("workflow", "scripts", "config", "envs"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    study = tmp_path / "study"
    shutil.copytree(workdir, study, symlinks=True)
    return repo, study


def dry_run(repo: Path, study: Path, *args: str, config: dict | None = None) -> str:
    configs = [repo / "config" / "config.yaml", repo / "config" / "tiny.yaml"]
    if config:
        configs.append(study / "change.yaml")
        configs[-1].write_text(yaml.safe_dump(config))
    cmd = [str(SNAKEMAKE), "-s", str(repo / "workflow" / "Snakefile"), "--directory", str(study),
           "--configfile", *map(str, configs), "--dry-run", "--cores", "1", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def check_exactly_downstream(repo, study, seed, config=None):
    planned = {key(job) for job in listed_jobs(dry_run(repo, study, config=config))}
    everything = listed_jobs(dry_run(repo, study, "--forceall", config=config))
    seeds = {key(job) for job in everything if seed(job)}
    assert seeds, "the change touches no job: the test would prove nothing"
    expected = downstream(everything, seeds)
    assert planned == expected, (sorted(planned - expected), sorted(expected - planned))
    return planned


def test_an_untouched_copy_has_nothing_to_do(copies):
    repo, study = copies
    assert listed_jobs(dry_run(repo, study)) == []


def test_edits_that_cannot_change_an_output_rerun_nothing(copies):
    """Workflow support code (logs, provenance, config checks) and the comments and docstrings of the
    science library are outside every rule's `library` hash."""
    repo, study = copies
    support = repo / "scripts" / "dlmi_workflow" / "runlog.py"
    support.write_text(support.read_text() + "\nEDITED = True\n")
    science = repo / "scripts" / "dlmi" / "io.py"
    text = science.read_text()
    edited = text.replace('"""', '"""An edited docstring. ', 1).replace("\nimport ", "\n# an edited comment\nimport ", 1)
    assert edited != text
    science.write_text(edited)
    assert listed_jobs(dry_run(repo, study)) == []


def test_an_osem_parameter_reruns_pet_reconstruction_and_what_follows(copies):
    repo, study = copies
    planned = check_exactly_downstream(
        repo, study, lambda job: job["rule"] == "reconstruct_pet",
        config={"reconstruction": {"pet": {"iterations": 3}}},
    )
    rules = {rule for rule, _ in planned}
    assert {"reconstruct_pet", "register_pet", "extract_features", "cross_validate", "summarise_models"} <= rules
    assert not rules & {"simulate_pet", "reconstruct_ct", "reconstruct_mri", "register_t1", "segment_t1"}


@pytest.mark.parametrize("change, rule, touched, jobs", [
    ({"model": {"classifiers": {"linear_svm": {"grid": {"C": [0.5]}}}}}, "cross_validate", "model=linear_svm", 3),
    ({"model": {"feature_sets": {"icv_only": ["icv_ml"]}}}, "cross_validate", "features=icv_only", 3),
    ({"model": {"classifiers": {"cnn": {"grid": {"epochs": [3]}}}}}, "cross_validate_cnn", "model=cnn", 1),
], ids=["a classifier's grid", "a new feature set", "the CNN's settings"])
def test_a_model_change_runs_only_its_own_cross_validation_jobs(copies, change, rule, touched, jobs):
    repo, study = copies
    planned = check_exactly_downstream(
        repo, study, lambda job: job["rule"] == rule and touched in job["wildcards"], config=change)
    assert {name for name, _ in planned} == {rule, "summarise_models", "all"}
    assert sum(name == rule for name, _ in planned) == jobs  # of the study's 10 (or 13) rows


def test_an_edit_of_the_ct_projector_reruns_the_rules_that_import_it(copies):
    repo, study = copies
    module = repo / "scripts" / "dlmi" / "recon" / "projector.py"
    module.write_text(module.read_text() + "\nEDITED = True\n")
    users = {"simulate_ct", "reconstruct_ct", "simulate_pet", "reconstruct_pet"}  # CT and PET share the projector
    planned = check_exactly_downstream(repo, study, lambda job: job["rule"] in users)
    assert not {rule for rule, _ in planned} & {"simulate_mri", "reconstruct_mri", "register_t1", "segment_t1"}


def test_an_effect_size_reruns_the_ad_subjects_only(copies):
    """A control's anatomy does not depend on the disease effect sizes, so changing one re-runs the AD
    subjects (and the participants table, whose AD scores it changes) and what follows them."""
    repo, study = copies
    participants = pd.read_csv(study / "results" / "participants.tsv", sep="\t", dtype=str)
    ad = {f"subject={p.removeprefix('sub-')}" for p in participants.participant_id[participants.group == "AD"]}
    assert ad and len(ad) < len(participants)
    planned = check_exactly_downstream(
        repo, study, lambda job: (job["rule"], job["wildcards"]) in {("simulate_anatomy", s) for s in ad}
        or job["rule"] == "make_participants",
        config={"anatomy": {"effects": {"hippocampal_atrophy": [0.25, 0.35]}}},
    )
    assert {wildcards for _, wildcards in planned if wildcards.startswith("subject=")} == ad


def test_a_new_subject_runs_that_subject_and_the_group_stage_only(copies):
    repo, study = copies
    n = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())["cohort"]["n_subjects"]
    new = f"subject={n + 1:03d}"
    planned = check_exactly_downstream(
        repo, study, lambda job: job["wildcards"] == new or job["rule"] == "make_participants",
        config={"cohort": {"n_subjects": n + 1}},
    )
    per_subject = {wildcards for rule, wildcards in planned if wildcards.startswith("subject=")}
    assert per_subject == {new}


def test_each_rule_depends_on_the_library_modules_its_script_imports():
    """The `library` parameter names the dlmi modules that Python's own module finder (bytecode, not our AST
    walk) finds in the script's import closure, each with the hash of its current code. The finder does not
    follow the workflow support (dlmi_workflow): the dlmi modules only it imports (e.g. dlmi.seeding for the
    provenance record) serve the logs and records, not the outputs."""
    rules = {name: rule for name, rule in parse_workflow()["rules"].items() if rule["script"]}
    assert {"reconstruct_ct", "cross_validate", "describe_dataset"} <= set(rules)
    for name, rule in rules.items():
        script, library = rule["script"], rule["library"]
        finder = modulefinder.ModuleFinder(path=[str(REPO / "scripts")], excludes=[sources.SUPPORT])
        finder.run_script(script)
        found = {name for name in finder.modules if name == "dlmi" or name.startswith("dlmi.")}
        named = dict(entry.split("@") for entry in library.split())
        assert set(named) == found, name
        for module, digest in named.items():
            assert digest == sources.code_hash(sources.module_path(module))[:12]
