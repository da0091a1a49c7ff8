"""Dry-run planning: jobs per rule and an estimate of CPU-hours, GPU-hours and peak memory for a study of
any size, from the `benchmark:` files of earlier runs (or, for a rule never run, its declared resources).

    python -m dlmi.planning --configfile config/config.yaml --subjects 1000 [--profile config/profiles/slurm-gpu]

The job counts come from a Snakemake dry-run of the whole study (`--forceall`, in an empty scratch folder,
so finished results do not hide jobs). Per-job costs are medians over the benchmark files of each rule;
they hold for the configuration those runs used (voxel size, iterations), not for another.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]


def job_counts(output: str) -> dict[str, int]:
    """Rule -> number of jobs, from the 'Job stats' table Snakemake prints before a run or dry-run."""
    counts, inside = {}, False
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("job") and "count" in line:
            inside = True
            continue
        if inside and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts


def listed_jobs(output: str) -> list[dict]:
    """The jobs of a dry-run's job listing: rule, wildcards (e.g. 'subject=001'; '' for none), input and
    output files (sets) and the resources line."""
    jobs = []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            jobs.append({"rule": stripped.split()[1].rstrip(":"), "wildcards": "", "input": set(), "output": set(),
                         "resources": ""})
        elif jobs and line.startswith("    "):
            key, _, value = stripped.partition(": ")
            if key in ("input", "output"):
                jobs[-1][key] = {f.strip() for f in value.split(",")}
            elif key in ("wildcards", "resources"):
                jobs[-1][key] = value
    return jobs


def declared_resources(output: str) -> dict[str, dict[str, float]]:
    """Rule -> its declared mem_mb and runtime (minutes), from a dry-run's job listing."""
    declared = {}
    for job in listed_jobs(output):
        if job["resources"] and job["rule"] not in declared:
            values = dict(re.findall(r"(\w+)=([0-9.]+)", job["resources"]))
            declared[job["rule"]] = {k: float(values[k]) for k in ("mem_mb", "runtime") if k in values}
    return declared


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


def gpu_rules(profile: str | Path | None) -> set[str]:
    """Rules a Snakemake profile gives a GPU (`gpu` or `gres` with 'gpu' in set-resources; every rule when
    default-resources asks for one)."""
    if profile is None:
        return set()
    settings = yaml.safe_load((Path(profile) / "config.yaml").read_text()) or {}

    def wants_gpu(resources):
        items = resources.items() if isinstance(resources, dict) else (r.split("=", 1) for r in resources)
        return any((k == "gpu" and str(v).strip() not in ("0", "")) or (k == "gres" and "gpu" in str(v))
                   for k, v in items)

    if wants_gpu(settings.get("default-resources") or {}):
        return {"*"}
    return {rule for rule, res in (settings.get("set-resources") or {}).items() if wants_gpu(res)}


def estimate(counts: dict[str, int], benchmarks: pd.DataFrame, declared: dict[str, dict[str, float]],
             on_gpu: set[str] = frozenset()) -> pd.DataFrame:
    """Per rule: jobs, median wall and CPU seconds per job, total CPU-hours and GPU-hours, and the largest
    memory of one job. Rules without benchmark files fall back to their declared runtime (as wall and CPU
    time, an upper bound) and mem_mb."""
    rows = []
    for rule, jobs in counts.items():
        measured = benchmarks[benchmarks["rule"] == rule]
        if len(measured):
            wall, cpu, mem = measured["wall_s"].median(), measured["cpu_s"].median(), measured["max_rss_mb"].max()
            source = f"{len(measured)} benchmark(s)"
        else:
            wall = cpu = 60.0 * declared.get(rule, {}).get("runtime", 0.0)
            mem = declared.get(rule, {}).get("mem_mb", 0.0)
            source = "declared resources" if rule in declared else "none"
        gpu = rule in on_gpu or "*" in on_gpu
        rows.append({"rule": rule, "jobs": jobs, "wall_s_per_job": wall, "cpu_s_per_job": cpu,
                     "cpu_hours": jobs * cpu / 3600, "gpu_hours": jobs * wall / 3600 if gpu else 0.0,
                     "peak_mem_mb": mem, "source": source})
    return pd.DataFrame(rows)


def dry_run(configfiles: list[str], subjects: int | None) -> str:
    """The output of a whole-study dry-run (with job listing) in an empty scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        files = [str(Path(f).resolve()) for f in configfiles]
        if subjects is not None:
            extra = Path(scratch) / "plan-cohort.yaml"
            extra.write_text(yaml.safe_dump({"cohort": {"n_subjects": subjects}}))
            files.append(str(extra))
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "workflow" / "Snakefile"),
               "--directory", scratch, "--configfile", *files, "--dry-run", "--forceall", "--cores", "1"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the dry-run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


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
    parser.add_argument("--profile", help="a profile folder; its GPU rules count as GPU-hours")
    args = parser.parse_args(argv)
    output = dry_run(args.configfile, args.subjects)
    bench = read_benchmarks(args.benchmarks)
    table = estimate(job_counts(output), bench, declared_resources(output), gpu_rules(args.profile))
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(summary(table))
    if not len(bench):
        print(f"no benchmark files under {args.benchmarks}/: costs are the rules' declared resources "
              "(upper bounds); run a study first for measured figures")


if __name__ == "__main__":
    main()
