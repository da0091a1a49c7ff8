"""Cluster resources: the memory a rule asks for on a given grid, and checks of a profile's resource
settings, done when the workflow is parsed, before any job is submitted.

A Snakemake profile hands resources to the executor by name (`default-resources`, `set-resources`); a
name the SLURM executor does not read (`gpus`, `mem_gb`, `time`) or a rule name with a typo is silently
ignored, and the job then runs without its GPU, with the default memory, or with another rule's limits.
`profile_errors` turns each such setting into one message that names the profile key, the rule and the
resource. (Reading those settings out of Snakemake is `dlmi_workflow.snakemake_interface.resource_settings`.)
"""
from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

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


# The grid the rules' memory is given for (the schema's default anatomy.voxel_mm).
DEFAULT_VOXEL_MM = 2.0
# Profile keys that name rules. Snakemake hands set-resources and set-threads to the workflow while it is
# parsed (checked then, by profile_errors); groups only after parsing, and localrules are no profile key at
# all (a profile that has it names rules all the same): profile_rule_errors checks a profile file for all.
PROFILE_RULE_KEYS = ("set-resources", "set-threads", "groups", "localrules")


class ProfileError(ValueError):
    """A profile's resource settings would be ignored or contradict the config; the message says where."""


def grid_mem_mb(mb_at_default_grid: int, voxel_mm: float) -> int:
    """mem_mb of a rule that holds images of the anatomy grid, on a grid of `voxel_mm` (isotropic): the value
    for the default 2 mm grid times the growth of the voxel count, (2 / voxel_mm)^3, on a finer grid (8 times
    at 1 mm); the 2 mm value on a coarser grid, where Python, torch and the template take most of it."""
    return round(mb_at_default_grid * max(1.0, (DEFAULT_VOXEL_MM / float(voxel_mm)) ** 3))


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


def unknown_rule_errors(key: str, names: Iterable[str], rules: Collection[str]) -> list[str]:
    """One message per name under the profile key `key` that is not a rule of the workflow."""
    return [f"{key}: there is no rule '{name}'{_suggestion(name, rules)}"
            for name in names if name not in rules]


def _named_rules(value) -> list[str]:
    """The rule names of a profile key's value: a mapping's keys, or the items of a list in command-line
    form ('rule:mem_mb=100', 'rule=group', 'rule')."""
    if isinstance(value, Mapping):
        return [str(name) for name in value]
    if isinstance(value, str):
        value = value.split()
    return [str(item).split(":")[0].split("=")[0] for item in value or []]


def profile_rule_errors(profile: Mapping[str, object], rules: Collection[str]) -> list[str]:
    """One message per rule that a profile file (its YAML mapping) names under set-resources, set-threads,
    groups or localrules and that the workflow does not have."""
    errors = []
    for key in PROFILE_RULE_KEYS:
        errors += unknown_rule_errors(key, _named_rules(profile.get(key)), rules)
    return errors


def _describe_gpu(resources: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={resources[key]}" for key in ("gpu", "gpu_model", "gres") if resources.get(key))


def profile_errors(
    default_resources: Mapping[str, object],
    set_resources: Mapping[str, Mapping[str, object]],
    *,
    device: str,
    rules: Collection[str],
    custom_resources: Mapping[str, object] | Collection[str] = (),
    set_threads: Collection[str] = (),
) -> list[str]:
    """Every problem of a profile's resource settings, one message each ([] when there is none).

    default_resources: {resource: value} (profile key `default-resources`);
    set_resources: {rule: {resource: value}} (`set-resources`); device: the config's `device`;
    rules: the workflow's rule names; custom_resources: {name: value} (or the names) declared with
    `resources:` (global scheduling limits such as `io=2`, or the GPU profile's `gpu=1`), which rules may
    also ask for; set_threads: the rule names under `set-threads`. (`groups` cannot be checked here:
    Snakemake hands them to the workflow only after parsing; see profile_rule_errors.)
    """
    known = KNOWN_RESOURCES | set(custom_resources)
    errors = [_unknown_resource("default-resources: every rule", name, known) for name in default_resources
              if not name.startswith("_") and name not in known]
    errors += unknown_rule_errors("set-resources", set_resources, rules)
    for rule, resources in set_resources.items():
        if rule in rules:
            errors += [_unknown_resource(f"set-resources: rule '{rule}'", name, known) for name in resources
                       if not name.startswith("_") and name not in known]
    errors += unknown_rule_errors("set-threads", set_threads, rules)
    gpu_limit = custom_resources.get("gpu") if isinstance(custom_resources, Mapping) else None
    if requests_gpu({"gpu": gpu_limit}) and not (
            requests_gpu(default_resources) or any(requests_gpu(res) for res in set_resources.values())):
        errors.append(
            f"resources: gpu={gpu_limit} limits the GPU jobs, but no rule asks for a GPU: a profile given after "
            "config/profiles/slurm-gpu replaced its set-resources; repeat its gpu lines in that profile"
        )
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
