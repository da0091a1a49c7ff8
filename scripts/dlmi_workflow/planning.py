"""Dry-run planning: jobs per rule and an estimate of CPU-hours, GPU-hours and peak memory for a study of
any size, from the `benchmark:` files of earlier runs (or, for a rule never run, the resources its jobs ask
for).

    python -m dlmi_workflow.planning --configfile config/config.yaml --subjects 1000 \
        [--profile config/profiles/slurm --profile config/profiles/slurm-gpu]

The job counts and each job's resources come from a Snakemake dry-run of the whole study (`--forceall`, in
an empty scratch folder, so finished results do not hide jobs) with the given profiles, so a rule's memory,
wall time and GPU are what the SLURM executor would be asked for: the rule's own values after the
profiles' `set-resources` (and, for what a rule leaves unset, `default-resources`). Per-job costs are
medians over the benchmark files of each rule; they hold for the configuration those runs used (voxel
size, iterations), not for another.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dlmi_workflow.cluster import requests_gpu
from dlmi_workflow.snakemake_interface import dry_run, job_counts, listed_jobs

REPO = Path(__file__).resolve().parents[2]


def requested_resources(jobs: list[dict]) -> dict[str, dict[str, float]]:
    """Rule -> the mem_mb and runtime (minutes) its jobs ask for, and gpu (1.0 when they ask for a GPU),
    from the jobs of a dry-run's listing (`snakemake_interface.listed_jobs`); the first job of each rule.
    Rules whose jobs ask for neither memory nor time (`all`) are left out."""
    requested = {}
    for job in jobs:
        resources = job["resources"]
        values = {name: float(resources[name]) for name in ("mem_mb", "runtime")
                  if isinstance(resources.get(name), int | float)}
        if values and job["rule"] not in requested:
            requested[job["rule"]] = values | {"gpu": 1.0 if requests_gpu(resources) else 0.0}
    return requested


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """One row per benchmark file under `folder` (benchmarks/<rule>.tsv, benchmarks/<rule>/*.tsv):
    rule, wall s, CPU s and max RSS (MB)."""
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        rule = path.stem if path.parent == Path(folder) else path.parent.name
        table = pd.read_csv(path, sep="\t")
        for _, r in table.iterrows():
            rows.append({"rule": rule, "wall_s": float(r["s"]), "cpu_s": float(r["cpu_time"]),
                         "max_rss_mb": float(r["max_rss"])})
    return pd.DataFrame(rows, columns=["rule", "wall_s", "cpu_s", "max_rss_mb"])


def estimate(counts: dict[str, int], benchmarks: pd.DataFrame,
             requested: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per rule: jobs, median wall and CPU seconds per job, total CPU-hours and GPU-hours (for the rules
    whose jobs ask for a GPU), and the largest memory of one job. Rules without benchmark files fall back to
    the runtime their jobs ask for (as wall and CPU time, an upper bound) and their mem_mb."""
    rows = []
    for rule, jobs in counts.items():
        asked = requested.get(rule, {})
        measured = benchmarks[benchmarks["rule"] == rule]
        if len(measured):
            wall, cpu, mem = measured["wall_s"].median(), measured["cpu_s"].median(), measured["max_rss_mb"].max()
            source = f"{len(measured)} benchmark(s)"
        else:
            wall = cpu = 60.0 * asked.get("runtime", 0.0)
            mem = asked.get("mem_mb", 0.0)
            source = "requested resources" if rule in requested else "none"
        rows.append({"rule": rule, "jobs": jobs, "wall_s_per_job": wall, "cpu_s_per_job": cpu,
                     "cpu_hours": jobs * cpu / 3600,
                     "gpu_hours": jobs * wall / 3600 if asked.get("gpu") else 0.0,
                     "peak_mem_mb": mem, "source": source})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    total_cpu, total_gpu = table["cpu_hours"].sum(), table["gpu_hours"].sum()
    peak = table.loc[table["peak_mem_mb"].idxmax()]
    return (f"{table['jobs'].sum()} jobs: {total_cpu:.2f} CPU-hours, {total_gpu:.2f} GPU-hours; "
            f"peak memory of one job {peak['peak_mem_mb']:.0f} MB ({peak['rule']})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", nargs="+", default=[str(REPO / "config" / "config.yaml")])
    parser.add_argument("--subjects", type=int, help="cohort size (default: the config's cohort.n_subjects)")
    parser.add_argument("--benchmarks", default="benchmarks", help="benchmark folder of earlier runs")
    parser.add_argument("--profile", action="append", default=[],
                        help="a Snakemake profile folder, as given to snakemake (repeat it to layer "
                             "profiles, e.g. slurm then slurm-gpu); its resources are the ones estimated")
    args = parser.parse_args(argv)
    output = dry_run(REPO / "workflow" / "Snakefile", args.configfile, args.profile,
                     {"cohort": {"n_subjects": args.subjects}} if args.subjects is not None else None)
    bench = read_benchmarks(args.benchmarks)
    table = estimate(job_counts(output), bench, requested_resources(listed_jobs(output)))
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(summary(table))
    if not len(bench):
        print(f"no benchmark files under {args.benchmarks}/: costs are the resources the jobs ask for "
              "(upper bounds); run a study first for measured figures")


if __name__ == "__main__":
    main()
