"""Contract test of dlmi_workflow.snakemake_interface, the one module that reads Snakemake's printed output
and internals: the installed Snakemake is the version it was written for, and each of its functions still
works on a tiny real workflow (a group of two per-sample rules, one temp() output, a localrule, a profile
that overrides a rule's memory). An upgrade of Snakemake fails here first; adapt the module, then
SNAKEMAKE_VERSION."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlmi_workflow import snakemake_interface as smi

SCRIPTS = Path(smi.__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

SNAKEFILE = """\
import json, sys
sys.path.insert(0, {scripts!r})
from dlmi_workflow.snakemake_interface import resource_settings

print("SETTINGS=" + json.dumps(resource_settings(workflow)))

wildcard_constraints:
    sample="[a-z]+",

localrules:
    gather,

rule all:
    input: "gathered.txt"

rule make:
    output: temp("raw/{{sample}}.txt"), "kept/{{sample}}.txt"
    log: "logs/make/{{sample}}.log"
    threads: 1
    resources: mem_mb=300, runtime=2
    group: "sample"
    shell: "echo {{wildcards.sample}} > {{output[0]}}; cp {{output[0]}} {{output[1]}}; touch {{log}}"

rule use:
    input: "raw/{{sample}}.txt"
    output: "used/{{sample}}.txt"
    threads: 1
    resources: mem_mb=200, runtime=1
    group: "sample"
    shell: "cp {{input}} {{output}}"

rule gather:
    input: expand("used/{{sample}}.txt", sample=["a", "b"]), expand("kept/{{sample}}.txt", sample=["a", "b"])
    output: "gathered.txt"
    shell: "cat {{input}} > {{output}}"
"""
PROFILE = """\
set-resources:
  make: {mem_mb: 999, gpu: 1}
set-threads:
  use: 1
resources:
  io: 2
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-workflow")
    (root / "Snakefile").write_text(SNAKEFILE.format(scripts=str(SCRIPTS)))
    (root / "profile").mkdir()
    (root / "profile" / "config.yaml").write_text(PROFILE)
    return root


def run(tiny, workdir, *args, env=None):
    result = subprocess.run([str(SNAKEMAKE), "-s", str(tiny / "Snakefile"), "--directory", str(workdir), *args],
                            capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_written_for_the_installed_snakemake():
    assert smi.installed_version() == smi.SNAKEMAKE_VERSION


def test_dry_run_listing_counts_groups_and_profile_resources(tiny):
    output = smi.dry_run(tiny / "Snakefile", [], profiles=[tiny / "profile"])
    assert smi.job_counts(output) == {"make": 2, "use": 2, "gather": 1, "all": 1}
    jobs = smi.listed_jobs(output)
    assert smi.planned_jobs(output) == {("make", "sample=a"), ("make", "sample=b"), ("use", "sample=a"),
                                        ("use", "sample=b"), ("gather", ""), ("all", "")}
    make = [job for job in jobs if job["rule"] == "make"]
    assert {job["resources"]["mem_mb"] for job in make} == {999}  # the profile's value, not the rule's 300
    assert {job["resources"]["gpu"] for job in make} == {1}
    assert {job["resources"]["runtime"] for job in make} == {2}
    use_a = next(job for job in jobs if job["rule"] == "use" and job["wildcards"] == "sample=a")
    assert use_a["resources"]["mem_mb"] == 200 and use_a["input"] == {"raw/a.txt"} and use_a["output"] == {"used/a.txt"}
    grouped = [job for job in jobs if job["rule"] in ("make", "use")]
    assert {job["group"] for job in grouped} == {"sample"}
    assert len({job["group_job"] for job in grouped}) == 2  # one group job per sample, of two jobs each
    assert all(job["group_job"] is None for job in jobs if job["rule"] in ("gather", "all"))
    settings = json.loads(next(line for line in output.splitlines() if line.startswith("SETTINGS="))[9:])
    assert settings == {"default_resources": {}, "set_resources": {"make": {"mem_mb": 999, "gpu": 1}},
                        "custom_resources": {"io": 2}, "set_threads": ["use"]}


def test_run_listing_and_finished_rules(tiny, tmp_path):
    output = run(tiny, tmp_path, "--cores", "1")
    assert smi.finished_rules(output) == {"make", "use", "gather", "all"}
    assert smi.planned_jobs(output) >= {("make", "sample=a"), ("use", "sample=b"), ("gather", "")}
    assert {job["rule"] for job in smi.listed_jobs(output) if job["local"]} >= {"gather"}
    assert not (tmp_path / "raw" / "a.txt").exists() and (tmp_path / "kept" / "a.txt").exists()  # temp() honoured


def test_slurm_run_id(tiny, tmp_path):
    """The SLURM executor names its run as it starts, before any submission: here every job of the target
    runs locally, and the SLURM programs are stand-ins that fail if called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "squeue", "sacct", "sinfo", "scontrol", "srun", "sacctmgr"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "used").mkdir()
    for sample in ("a", "b"):
        (tmp_path / "used" / f"{sample}.txt").write_text(sample)
    (tmp_path / "kept").mkdir()
    for sample in ("a", "b"):
        (tmp_path / "kept" / f"{sample}.txt").write_text(sample)
    output = run(tiny, tmp_path, "--executor", "slurm", "--jobs", "1", "--slurm-init-seconds-before-status-checks",
                 "1", "--seconds-between-status-checks", "1", "gathered.txt", env=env)
    run_id = smi.slurm_run_id(output)
    assert run_id and len(run_id) == 36
    assert smi.finished_rules(output) == {"gather"}


def test_parse_workflow(tiny):
    parsed = smi.parse_workflow(tiny / "Snakefile")
    rules = parsed["rules"]
    assert set(rules) == {"all", "make", "use", "gather"}
    make = rules["make"]
    assert make["group"] == "sample" and not make["local"] and make["threads"] == 1
    assert make["resources"]["mem_mb"] == 300 and make["resources"]["runtime"] == 2  # before any profile
    # plain patterns, without the wildcard constraint Snakemake writes into its own copies
    assert make["output"] == [{"path": "raw/{sample}.txt", "temp": True}, {"path": "kept/{sample}.txt", "temp": False}]
    assert make["log"] == ["logs/make/{sample}.log"] and make["wildcards"] == ["sample"]
    assert make["kind"] == {"script": False, "shell": True, "run": False, "norun": False}
    assert rules["gather"]["local"] and rules["gather"]["group"] is None and rules["gather"]["wildcards"] == []
    assert rules["all"]["kind"]["norun"]
    assert rules["use"]["constraints"] == {"sample": "[a-z]+"}
    assert "pythonpath" in parsed


def test_plain_resources_reads_snakemake_resources():
    from snakemake.resources import Resource, Resources

    parsed = Resources.from_mapping({"mem_mb": 4000, "gpu": 1})
    parsed["slurm_partition"] = Resource.from_cli_expression("slurm_partition", "gpu-a100")
    assert smi.plain_resources(parsed) == {"mem_mb": 4000, "gpu": 1, "slurm_partition": "gpu-a100"}
    assert smi.plain_resources(None) == {}


def test_job_counts_and_listing_of_a_hand_made_text():
    """The shapes the parsers rely on, written out: the 'Job stats' table (printed twice; the first counts),
    an ungrouped job, a group job's indented jobs, and a run's 'localrule'."""
    text = """Job stats:
job                  count
-----------------  -------
simulate_ct              2
train_models             1
total                    3

[Wed Dec  2 04:20:21 2026] Group job subject (jobs in lexicogr. order):

    [Wed Dec  2 04:20:21 2026]
    rule simulate_ct:
        output: results/sub-001/ct/sub-001_sinogram.npz
        jobid: 3
        wildcards: subject=001
        resources: tmpdir=/tmp, mem_mb=2000, mem=2 GB, runtime=5, gpu=1
[Wed Dec  2 04:20:21 2026]
localrule train_models:
    input: a.tsv, b.tsv
    jobid: 0
    resources: tmpdir=<TBD>, mem_mb=2000, runtime=10
Job stats:
job                  count
-----------------  -------
simulate_ct              7
"""
    assert smi.job_counts(text) == {"simulate_ct": 2, "train_models": 1}
    ct, model = smi.listed_jobs(text)
    assert (ct["rule"], ct["wildcards"], ct["group"], ct["group_job"], ct["local"]) == (
        "simulate_ct", "subject=001", "subject", 0, False)
    assert ct["resources"] == {"tmpdir": "/tmp", "mem_mb": 2000, "mem": "2 GB", "runtime": 5, "gpu": 1}
    assert (model["rule"], model["group_job"], model["local"], model["input"]) == (
        "train_models", None, True, {"a.tsv", "b.tsv"})
