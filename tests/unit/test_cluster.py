"""dlmi.cluster: a profile's resource settings are checked against what the SLURM executor reads."""
from pathlib import Path

import pytest
import yaml

from dlmi.cluster import KNOWN_RESOURCES, plain_resources, profile_errors, requests_gpu

RULES = ["all", "build_template", "simulate_mri", "register_t1", "segment_t1", "train_models"]
PROFILES = Path(__file__).resolve().parents[2] / "config" / "profiles"


def errors(default=None, per_rule=None, device="auto", **kwargs):
    return profile_errors(default or {}, per_rule or {}, device=device, rules=RULES, **kwargs)


def test_known_resources_pass():
    assert errors({"mem_mb": 2000, "runtime": 15, "slurm_partition": "cpu", "tmpdir": "system_tmpdir"},
                  {"register_t1": {"gpu": 1, "cpus_per_task": 2, "mem": "8GB"}}) == []


@pytest.mark.parametrize("per_rule, message", [
    ({"register_t1": {"gpus": 1}},
     ("set-resources: rule 'register_t1' asks for resource 'gpus', which the SLURM executor does not read "
     "(did you mean 'gpu'?)")),
    ({"train_models": {"mem_gb": 8}},
     ("set-resources: rule 'train_models' asks for resource 'mem_gb', which the SLURM executor does not read "
     "(did you mean 'mem_mb'?)")),
    ({"segment_t1": {"runtme": 10}},
     ("set-resources: rule 'segment_t1' asks for resource 'runtme', which the SLURM executor does not read "
     "(did you mean 'runtime'?)")),
    ({"segment_t1": {"flux_capacitor": 1}},
     ("set-resources: rule 'segment_t1' asks for resource 'flux_capacitor', which the SLURM executor does "
     "not read")),
    ({"register_t2": {"mem_mb": 100}}, "set-resources: there is no rule 'register_t2' (did you mean 'register_t1'?)"),
])
def test_unknown_resource_or_rule_in_set_resources(per_rule, message):
    assert errors(per_rule=per_rule) == [message]


def test_unknown_default_resource():
    assert errors({"time": 30}) == [
        ("default-resources: every rule asks for resource 'time', which the SLURM executor does not read "
        "(did you mean 'runtime'?)")]


def test_unknown_rule_in_set_threads():
    assert errors(set_threads=["register_t1", "segmnt_t1"]) == [
        "set-threads: there is no rule 'segmnt_t1' (did you mean 'segment_t1'?)"]


def test_declared_custom_resource_is_accepted():
    assert errors(per_rule={"register_t1": {"io": 1}}, custom_resources=["io"]) == []
    assert len(errors(per_rule={"register_t1": {"io": 1}})) == 1


def test_internal_resources_are_ignored():
    assert errors({"_cores": 1, "_nodes": 3}) == []


@pytest.mark.parametrize("resources, expected", [
    ({"gpu": 1}, True), ({"gpu": "1"}, True), ({"gpu": 0}, False), ({"gpu": "0"}, False),
    ({"gres": "gpu:a100:1"}, True), ({"gres": "tmpspace:10G"}, False), ({"gpu_model": "a100"}, True),
    ({"mem_mb": 100}, False), ({}, False),
])
def test_requests_gpu(resources, expected):
    assert requests_gpu(resources) is expected


def test_gpu_request_under_device_cpu():
    per_rule = {"register_t1": {"gpu": 1}, "segment_t1": {"gres": "gpu:1"}, "simulate_mri": {"gpu": 0}}
    assert errors(per_rule=per_rule, device="cpu") == [
        ("set-resources: rule 'register_t1' asks for a GPU (gpu=1), but the config sets device: cpu, so the job "
        "would hold a GPU it never uses; use a CPU profile (config/profiles/slurm) or set device to auto or cuda"),
        ("set-resources: rule 'segment_t1' asks for a GPU (gres=gpu:1), but the config sets device: cpu, so the "
        "job would hold a GPU it never uses; use a CPU profile (config/profiles/slurm) or set device to auto or "
        "cuda"),
    ]
    assert errors(per_rule=per_rule, device="auto") == []
    assert errors(per_rule=per_rule, device="cuda") == []
    assert errors({"gpu": 1}, device="cpu")[0].startswith("default-resources: every rule asks for a GPU (gpu=1)")


def test_plain_resources_reads_snakemake_resources():
    from snakemake.resources import Resource, Resources

    parsed = Resources.from_mapping({"mem_mb": 4000, "gpu": 1})
    parsed["slurm_partition"] = Resource.from_cli_expression("slurm_partition", "gpu-a100")
    assert plain_resources(parsed) == {"mem_mb": 4000, "gpu": 1, "slurm_partition": "gpu-a100"}
    assert plain_resources(None) == {}


@pytest.mark.parametrize("name, device, gpu_rules", [
    ("slurm", "cpu", set()),
    ("slurm-gpu", "auto", {"simulate_mri", "simulate_ct", "simulate_pet", "reconstruct_mri", "reconstruct_ct",
                           "reconstruct_pet", "register_t1", "register_pet", "segment_t1"}),
])
def test_shipped_profiles_pass_and_ask_gpus_where_meant(repo, name, device, gpu_rules):
    profile = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    rules = [line.split()[1].rstrip(":") for path in (repo / "workflow" / "rules").glob("*.smk")
             for line in path.read_text().splitlines() if line.startswith("rule ")]
    assert set(profile["set-resources"]) <= set(rules)
    assert profile_errors(profile["default-resources"], profile["set-resources"], device=device, rules=rules) == []
    assert {rule for rule, res in profile["set-resources"].items() if requests_gpu(res)} == gpu_rules
    assert set(KNOWN_RESOURCES) >= {key for res in profile["set-resources"].values() for key in res}
