"""dlmi_workflow.cluster: a profile's resource settings are checked against what the SLURM executor reads,
and memory grows with the grid. (The shipped profiles are checked against the parsed workflow in
tests/workflow/test_profiles.py.)"""
import pytest

from dlmi_workflow.cluster import grid_mem_mb, profile_errors, profile_rule_errors, requests_gpu

RULES = ["all", "build_template", "simulate_mri", "register_t1", "segment_t1", "train_models"]


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
    assert errors(per_rule={"register_t1": {"io": 1}}, custom_resources={"io": 2}) == []
    assert errors(per_rule={"register_t1": {"io": 1}}, custom_resources=["io"]) == []
    assert len(errors(per_rule={"register_t1": {"io": 1}})) == 1


def test_gpu_limit_without_any_rule_asking_for_a_gpu():
    """The GPU profile's global gpu limit left alone: a later profile replaced its set-resources."""
    message = ("resources: gpu=1 limits the GPU jobs, but no rule asks for a GPU: a profile given after "
               "config/profiles/slurm-gpu replaced its set-resources; repeat its gpu lines in that profile")
    assert errors(per_rule={"register_t1": {"mem_mb": 6000}}, custom_resources={"gpu": 1}) == [message]
    assert errors(per_rule={"register_t1": {"gpu": 1}}, custom_resources={"gpu": 1}) == []
    assert errors({"gres": "gpu:1"}, custom_resources={"gpu": 1}) == []
    assert errors(custom_resources={"gpu": 0}) == []


def test_rule_names_of_a_profile_file():
    profile = {
        "set-resources": {"register_t1": {"mem_mb": 1}, "registr_t1": {"mem_mb": 1}},
        "set-threads": ["segment_t1=2", "segmnt_t1=2"],
        "groups": {"simulate_mri": "subject", "simulate_mr": "subject"},
        "localrules": ["train_model"],
        "executor": "slurm",
    }
    assert profile_rule_errors(profile, RULES) == [
        "set-resources: there is no rule 'registr_t1' (did you mean 'register_t1'?)",
        "set-threads: there is no rule 'segmnt_t1' (did you mean 'segment_t1'?)",
        "groups: there is no rule 'simulate_mr' (did you mean 'simulate_mri'?)",
        "localrules: there is no rule 'train_model' (did you mean 'train_models'?)",
    ]
    assert profile_rule_errors({"set-resources": ["register_t1:mem_mb=10"], "groups": ["train_models=g"]}, RULES) == []
    assert profile_rule_errors({}, RULES) == []


@pytest.mark.parametrize("voxel_mm, expected", [(2.0, 3000), (1.0, 24000), (3.0, 3000), (4.0, 3000)])
def test_memory_grows_with_the_voxel_count_on_finer_grids(voxel_mm, expected):
    assert grid_mem_mb(3000, voxel_mm) == expected


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
