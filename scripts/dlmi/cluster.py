"""Checks of a cluster profile's resource settings, done when the workflow is parsed, before any job is
submitted.

A Snakemake profile hands resources to the executor by name (`default-resources`, `set-resources`); a
name the SLURM executor does not read (`gpus`, `mem_gb`, `time`) or a rule name with a typo is silently
ignored, and the job then runs without its GPU, with the default memory, or with another rule's limits.
`profile_errors` turns each such setting into one message that names the profile key, the rule and the
resource.
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

# Resources that snakemake-executor-plugin-slurm 2.8 turns into sbatch options or uses to pick a
# partition (read in its __init__.py, submit_string.py, utils.py, partitions.py and in
# snakemake-executor-plugin-slurm-jobstep's get_cpu_setting).
SLURM_RESOURCES = frozenset({
    "slurm_account", "slurm_partition", "slurm_cluster", "cluster", "clusters", "qos", "constraint",
    "runtime", "mem_mb", "mem_mb_per_cpu", "cpus_per_task", "cpus_per_gpu", "threads",
    "nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "mpi", "mpi_tasks",
    "gpu", "gpu_model", "gres", "slurm_extra",
})
# Resources Snakemake itself defines or converts: `mem`/`disk` ("8GB") become mem_mb/disk_mb.
SNAKEMAKE_RESOURCES = frozenset({"mem", "mem_mib", "disk", "disk_mb", "disk_mib", "tmpdir"})
KNOWN_RESOURCES = SLURM_RESOURCES | SNAKEMAKE_RESOURCES

# Names people write for something the executor reads under another name.
ALIASES = {
    "gpus": "gpu", "nvidia_gpu": "gpu", "gpu_count": "gpu", "ngpus": "gpu",
    "mem_gb": "mem_mb", "memory": "mem_mb", "mem_per_cpu": "mem_mb_per_cpu",
    "time": "runtime", "walltime": "runtime", "time_min": "runtime", "runtime_min": "runtime",
    "cpus": "cpus_per_task", "cores": "cpus_per_task", "ncpus": "cpus_per_task",
    "partition": "slurm_partition", "account": "slurm_account", "ntasks": "tasks",
}


class ProfileError(ValueError):
    """A profile's resource settings would be ignored or contradict the config; the message says where."""


def resource_value(resource):
    """The value of a Snakemake `Resource` as the profile gave it (the expression text when it is one
    still to be evaluated per job), or `resource` itself when it is already a plain value."""
    if hasattr(resource, "is_evaluable"):
        return resource.raw if resource.is_evaluable() else resource.value
    return resource


def plain_resources(resources) -> dict:
    """`{name: value}` of a Snakemake `Resources` object or any mapping; `{}` for None."""
    return {name: resource_value(value) for name, value in (resources or {}).items()}


def requests_gpu(resources: Mapping[str, object]) -> bool:
    """True when `resources` make the SLURM executor ask for a GPU: a `gpu` count other than 0, a
    `gpu_model`, or a `gres` that names a gpu (the executor's own test: "gpu" in gres)."""
    gpu = resources.get("gpu")
    if gpu not in (None, 0, "0", "", False):
        return True
    if resources.get("gpu_model"):
        return True
    return "gpu" in str(resources.get("gres") or "")


def _suggestion(name: str, choices: Collection[str]) -> str:
    guess = ALIASES.get(name) or next(iter(difflib.get_close_matches(name, sorted(choices), n=1)), None)
    return f" (did you mean '{guess}'?)" if guess else ""


def _unknown_resource(where: str, name: str, known: Collection[str]) -> str:
    return f"{where} asks for resource '{name}', which the SLURM executor does not read{_suggestion(name, known)}"


def _describe_gpu(resources: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={resources[key]}" for key in ("gpu", "gpu_model", "gres") if resources.get(key))


def profile_errors(
    default_resources: Mapping[str, object],
    set_resources: Mapping[str, Mapping[str, object]],
    *,
    device: str,
    rules: Collection[str],
    custom_resources: Collection[str] = (),
    set_threads: Collection[str] = (),
) -> list[str]:
    """Every problem of a profile's resource settings, one message each ([] when there is none).

    default_resources: {resource: value} (profile key `default-resources`);
    set_resources: {rule: {resource: value}} (`set-resources`); device: the config's `device`;
    rules: the workflow's rule names; custom_resources: names declared with `resources:` (global
    scheduling limits such as `io=2`), which rules may also ask for; set_threads: the rule names under
    `set-threads`. (`groups` cannot be checked here: Snakemake hands them to the workflow only after
    parsing.)
    """
    known = KNOWN_RESOURCES | set(custom_resources)
    errors = []
    for name in default_resources:
        if not name.startswith("_") and name not in known:
            errors.append(_unknown_resource("default-resources: every rule", name, known))
    for rule, resources in set_resources.items():
        if rule not in rules:
            errors.append(f"set-resources: there is no rule '{rule}'{_suggestion(rule, rules)}")
            continue
        for name in resources:
            if not name.startswith("_") and name not in known:
                errors.append(_unknown_resource(f"set-resources: rule '{rule}'", name, known))
    for rule in set_threads:
        if rule not in rules:
            errors.append(f"set-threads: there is no rule '{rule}'{_suggestion(rule, rules)}")
    if device == "cpu":
        wanting = [("default-resources: every rule", default_resources)] if requests_gpu(default_resources) else []
        wanting += [(f"set-resources: rule '{rule}'", resources) for rule, resources in set_resources.items()
                    if rule in rules and requests_gpu(resources)]
        for where, resources in wanting:
            errors.append(
                f"{where} asks for a GPU ({_describe_gpu(resources)}), but the config sets device: cpu, so the "
                "job would hold a GPU it never uses; use a CPU profile (config/profiles/slurm) or set device "
                "to auto or cuda"
            )
    return errors
