"""Planning: the resources a dry-run's jobs ask for, benchmark files, and the cost arithmetic, on hand-made
inputs with known answers. (Reading Snakemake's text is dlmi_workflow.snakemake_interface, tested in
test_snakemake_interface.py; that `make plan` takes a profile's values is tested in
tests/workflow/test_profiles.py.)"""
import pandas as pd
import pytest

from dlmi_workflow import planning

# Jobs as snakemake_interface.listed_jobs returns them (only the keys planning reads).
JOBS = [
    {"rule": "simulate_ct", "resources": {"tmpdir": "/tmp", "mem_mb": 3000, "mem": "3 GB", "runtime": 10, "gpu": 1}},
    {"rule": "simulate_ct", "resources": {"tmpdir": "/tmp", "mem_mb": 3000, "runtime": 10, "gpu": 1}},
    {"rule": "train_models", "resources": {"tmpdir": "<TBD>", "mem_mb": 2000, "runtime": 20}},
    {"rule": "all", "resources": {"tmpdir": "/tmp"}},
]

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_requested_resources_of_the_listed_jobs():
    assert planning.requested_resources(JOBS) == {
        "simulate_ct": {"mem_mb": 3000.0, "runtime": 10.0, "gpu": 1.0},
        "train_models": {"mem_mb": 2000.0, "runtime": 20.0, "gpu": 0.0},
    }
    gres = [{"rule": "register_t1", "resources": {"mem_mb": 100, "gres": "gpu:a100:1"}}]
    assert planning.requested_resources(gres)["register_t1"]["gpu"] == 1.0


def test_benchmark_files_per_subject_and_per_rule(tmp_path):
    (tmp_path / "simulate_ct").mkdir()
    for k, (s, rss, cpu) in enumerate([(2.0, 300.0, 1.5), (4.0, 500.0, 3.5), (3.0, 400.0, 2.5)]):
        (tmp_path / "simulate_ct" / f"sub-00{k}.tsv").write_text(BENCH_HEADER + f"{s}\t0:00:0{s:.0f}\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
    (tmp_path / "train_models.tsv").write_text(BENCH_HEADER + "10.0\t0:00:10\t800\t0\t0\t0\t0\t0\t0\t9.0\n")
    table = planning.read_benchmarks(tmp_path)
    assert sorted(table["rule"]) == ["simulate_ct"] * 3 + ["train_models"]
    assert table[table["rule"] == "train_models"].iloc[0].to_dict() == {
        "rule": "train_models", "wall_s": 10.0, "cpu_s": 9.0, "max_rss_mb": 800.0}


def test_estimate_uses_medians_and_falls_back_to_requested_resources():
    bench = pd.DataFrame({"rule": ["simulate_ct"] * 3, "wall_s": [2.0, 4.0, 3.0], "cpu_s": [1.5, 3.5, 2.5],
                          "max_rss_mb": [300.0, 500.0, 400.0]})
    counts = {"simulate_ct": 1000, "train_models": 1}
    table = planning.estimate(counts, bench, planning.requested_resources(JOBS))
    ct, model = table.set_index("rule").loc["simulate_ct"], table.set_index("rule").loc["train_models"]
    assert ct["cpu_hours"] == pytest.approx(1000 * 2.5 / 3600)
    assert ct["gpu_hours"] == pytest.approx(1000 * 3.0 / 3600)  # its jobs ask for a GPU
    assert ct["peak_mem_mb"] == 500.0
    assert (model["cpu_hours"], model["gpu_hours"], model["peak_mem_mb"]) == (pytest.approx(20 / 60), 0.0, 2000.0)
    assert model["source"] == "requested resources"
    assert planning.summary(table).startswith("1001 jobs: 1.03 CPU-hours, 0.83 GPU-hours; peak memory of one job 2000 MB")
