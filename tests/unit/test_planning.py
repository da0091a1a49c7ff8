"""Planning: job counts and resources parsed from Snakemake's dry-run text, benchmark files, and the
cost arithmetic, on hand-made inputs with known answers."""
import pandas as pd
import pytest

from dlmi import planning

DRY_RUN = """Building DAG of jobs...
Job stats:
job                  count
-----------------  -------
simulate_ct              3
train_models             1
total                    4

rule simulate_ct:
    output: results/sub-001/ct/sub-001_sinogram.npz
    jobid: 3
    wildcards: subject=001
    resources: tmpdir=<TBD>, mem_mb=3000, mem_mib=2862, runtime=10

rule simulate_ct:
    jobid: 4
    resources: tmpdir=<TBD>, mem_mb=3000, mem_mib=2862, runtime=10

localrule train_models:
    jobid: 0
    resources: tmpdir=<TBD>, mem_mb=2000, mem_mib=1908, runtime=20
"""

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_counts_and_declared_resources_from_a_dry_run():
    assert planning.job_counts(DRY_RUN) == {"simulate_ct": 3, "train_models": 1}
    assert planning.declared_resources(DRY_RUN) == {
        "simulate_ct": {"mem_mb": 3000.0, "runtime": 10.0},
        "train_models": {"mem_mb": 2000.0, "runtime": 20.0},
    }


def test_benchmark_files_per_subject_and_per_rule(tmp_path):
    (tmp_path / "simulate_ct").mkdir()
    for k, (s, rss, cpu) in enumerate([(2.0, 300.0, 1.5), (4.0, 500.0, 3.5), (3.0, 400.0, 2.5)]):
        (tmp_path / "simulate_ct" / f"sub-00{k}.tsv").write_text(BENCH_HEADER + f"{s}\t0:00:0{s:.0f}\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
    (tmp_path / "train_models.tsv").write_text(BENCH_HEADER + "10.0\t0:00:10\t800\t0\t0\t0\t0\t0\t0\t9.0\n")
    table = planning.read_benchmarks(tmp_path)
    assert sorted(table["rule"]) == ["simulate_ct"] * 3 + ["train_models"]
    assert table[table["rule"] == "train_models"].iloc[0].to_dict() == {
        "rule": "train_models", "wall_s": 10.0, "cpu_s": 9.0, "max_rss_mb": 800.0}


def test_estimate_uses_medians_and_falls_back_to_declared_resources():
    bench = pd.DataFrame({"rule": ["simulate_ct"] * 3, "wall_s": [2.0, 4.0, 3.0], "cpu_s": [1.5, 3.5, 2.5],
                          "max_rss_mb": [300.0, 500.0, 400.0]})
    counts = {"simulate_ct": 1000, "train_models": 1}
    table = planning.estimate(counts, bench, planning.declared_resources(DRY_RUN), on_gpu={"simulate_ct"})
    ct, model = table.set_index("rule").loc["simulate_ct"], table.set_index("rule").loc["train_models"]
    assert ct["cpu_hours"] == pytest.approx(1000 * 2.5 / 3600)
    assert ct["gpu_hours"] == pytest.approx(1000 * 3.0 / 3600)
    assert ct["peak_mem_mb"] == 500.0
    assert (model["cpu_hours"], model["gpu_hours"], model["peak_mem_mb"]) == (pytest.approx(20 / 60), 0.0, 2000.0)
    assert model["source"] == "declared resources"
    assert planning.summary(table).startswith("1001 jobs: 1.03 CPU-hours, 0.83 GPU-hours; peak memory of one job 2000 MB")


def test_gpu_rules_of_a_profile(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "set-resources:\n  register_t1:\n    gpu: 1\n  reconstruct_pet:\n    gres: 'gpu:1'\n  train_models:\n    mem_mb: 100\n")
    assert planning.gpu_rules(tmp_path) == {"register_t1", "reconstruct_pet"}
    (tmp_path / "config.yaml").write_text("default-resources:\n  - gpu=1\n")
    assert planning.gpu_rules(tmp_path) == {"*"}
    assert planning.gpu_rules(None) == set()
