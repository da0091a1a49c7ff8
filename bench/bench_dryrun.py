"""Benchmark: dry-run (DAG planning) time of our workflow vs bare Snakemake on a DAG of the same shape.

The peer is generated from our own DAG: the same rules, the same per-subject / per-stage / once-only jobs,
the same dependencies with the same number of files on each edge, the same number of outputs, a log and a
benchmark file per job, but plain `shell: "touch {output}"` rules with no config validation, input
functions or parameters. Both are dry-run from an empty folder with the same Snakemake, in a fresh process
each, for 100, 1000 and 3000 simulated subjects, and for a BIDS study (input.bids_dir) of a synthetic
dataset of 1000 subjects x 2 sessions, whose discovery with pybids is part of our time. Quality: the number
of planned jobs (they must be equal).

    python bench/bench_dryrun.py
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from dlmi_workflow.snakemake_interface import job_counts, listed_jobs  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SIZES = (100, 1000, 3000)
BIDS_SIZE, BIDS_SESSIONS = 1000, 2


def synthetic_bids(root: Path, subjects: int, sessions: int = BIDS_SESSIONS) -> None:
    """A BIDS tree of `subjects` x `sessions` T1w files (empty: discovery reads names, not images) with a
    participants.tsv giving alternate subjects CN and AD."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "synthetic", "BIDSVersion": "1.9.0"}')
    rows = ["participant_id\tgroup"]
    for i in range(1, subjects + 1):
        label = f"{i:04d}"
        rows.append(f"sub-{label}\t{'AD' if i % 2 else 'CN'}")
        for k in range(1, sessions + 1):
            folder = root / f"sub-{label}" / f"ses-{k:02d}" / "anat"
            folder.mkdir(parents=True)
            (folder / f"sub-{label}_ses-{k:02d}_T1w.nii.gz").touch()
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")


def _ours(workdir: Path, subjects: int, *args: str, bids: bool = False) -> list[str]:
    extra = workdir / "cohort.yaml"
    if bids:
        synthetic_bids(workdir / "rawdata", subjects)
        extra.write_text("input:\n  bids_dir: rawdata\n")
    else:
        extra.write_text(f"cohort:\n  n_subjects: {subjects}\n")
    return [SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(REPO / "config" / "config.yaml"), str(extra), "--cores", "1", *args]


def shape(bids: bool = False) -> dict:
    """Our DAG's shape, read from the job listing of a 2-subject dry-run (of a simulated or a BIDS study):
    per rule its kind ('subject', 'stage' or 'once'), the stage values, the number of outputs, and per parent
    rule the number of that parent's files one job reads from one parent job."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(_ours(Path(tmp), 2, "--dry-run", "--forceall", bids=bids), capture_output=True,
                             text=True, check=True).stdout
    jobs = listed_jobs(out)
    producer = {f: job for job in jobs for f in job["output"]}
    rules: dict = {}
    for job in jobs:
        wc = dict(w.split("=") for w in job["wildcards"].split(", ")) if job["wildcards"] else {}
        kind = "subject" if "subject" in wc else ("stage" if wc else "once")
        rule = rules.setdefault(job["rule"], {"kind": kind, "stages": set(), "outputs": len(job["output"]),
                                              "parents": defaultdict(int)})
        if kind == "stage":
            rule["stages"].add(next(iter(wc.values())))
        per_parent_job = defaultdict(lambda: defaultdict(int))
        for f in sorted(job["input"]):
            if f in producer:
                parent = producer[f]
                per_parent_job[parent["rule"]][id(parent)] += 1
        for parent, counts in per_parent_job.items():
            rule["parents"][parent] = max(rule["parents"][parent], max(counts.values()))
    return rules


def _path(kind: str, rule: str, k: int) -> str:
    return {"subject": f"{rule}/sub-{{subject}}_{k}.out", "stage": f"{rule}/{{stage}}_{k}.out",
            "once": f"{rule}/{k}.out"}[kind]


def bare_snakefile(rules: dict) -> str:
    """A Snakefile of plain shell rules with the given shape (`--config subjects=<n>`)."""
    stages = sorted(set().union(*(r["stages"] for r in rules.values())))
    lines = [
        'SUBJECTS = [f"{i:03d}" for i in range(1, config["subjects"] + 1)]',
        f"STAGES = {stages!r}",
        'wildcard_constraints:\n    subject=r"[0-9]{3,4}",',
    ]
    for name in ["all"] + [r for r in rules if r != "all"]:
        rule = rules[name]
        inputs = []
        for parent, files in rule["parents"].items():
            pkind = rules[parent]["kind"]
            for k in range(files):
                if pkind in (rule["kind"], "once"):
                    inputs.append(repr(_path(pkind, parent, k)))
                else:  # a group or stage job reads the files of every subject (or stage)
                    key = "subject=SUBJECTS" if pkind == "subject" else "stage=STAGES"
                    inputs.append(f"expand({_path(pkind, parent, k)!r}, {key})")
        body = [f"rule {name}:", "    input:", *(f"        {i}," for i in inputs)]
        if name != "all":
            suffix = {"subject": "/sub-{subject}", "stage": "/{stage}", "once": ""}[rule["kind"]]
            body += ["    output:", *(f"        {_path(rule['kind'], name, k)!r}," for k in range(rule["outputs"])),
                     f"    log:\n        'logs/{name}{suffix}.log'",
                     f"    benchmark:\n        'benchmarks/{name}{suffix}.tsv'",
                     '    shell:\n        "touch {output}"']
        lines.append("\n".join(body))
    return "\n\n\n".join(lines) + "\n"


def _time(cmd: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, sum(job_counts(result.stdout + result.stderr).values())


def row(n: int, bids: bool, bare: str) -> dict:
    """Our dry-run of n subjects and the bare peer's of the same shape, each in a fresh process; a BIDS
    study's dataset is written before the clock starts."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        ours_s, ours_jobs = _time(_ours(Path(a), n, "--dry-run", "--quiet", "rules", bids=bids))
        (Path(b) / "Snakefile").write_text(bare)
        peer_s, peer_jobs = _time([SNAKEMAKE, "-s", str(Path(b) / "Snakefile"), "--directory", b, "--config",
                                   f"subjects={n}", "--cores", "1", "--dry-run", "--quiet", "rules"])
    name = f"dry-run BIDS {n} subjects x {BIDS_SESSIONS} sessions" if bids else f"dry-run {n} subjects"
    return {"name": name, "ours_s": ours_s, "peer": "bare Snakemake, same DAG shape", "peer_s": peer_s,
            "ours_quality": ours_jobs, "peer_quality": peer_jobs, "quality_name": "jobs"}


def rows(device: str) -> list[dict]:
    if device != "cpu":
        return []  # planning runs on the CPU
    bare = bare_snakefile(shape())
    out = [row(n, False, bare) for n in SIZES]
    return out + [row(BIDS_SIZE, True, bare_snakefile(shape(bids=True)))]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--print-peer":
        print(bare_snakefile(shape()))
    else:
        for row in rows("cpu"):
            print(row)
