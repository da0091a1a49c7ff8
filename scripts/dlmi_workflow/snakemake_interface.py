"""Everything that reads Snakemake's printed output or its internals, in one place.

Written for one Snakemake version, SNAKEMAKE_VERSION; tests/unit/test_snakemake_interface.py asserts that the
installed Snakemake is that version and runs each function below on a tiny real workflow, so that an upgrade
fails there, in one test file, and not somewhere in a planning estimate or a workflow test.

- printed output: `job_counts` (the "Job stats" table), `listed_jobs` (a dry-run's job listing, group jobs
  included), `planned_jobs`, `slurm_run_id` and `finished_rules` (the SLURM executor's run ID and a group
  job's SLURM log);
- running it: `dry_run` (a dry-run of a whole study in an empty scratch folder, with profiles);
- internals: `plain_resources` and `resource_settings` (a profile's resource settings as the workflow sees
  them while it is parsed), `rule_files` (each rule's wildcards, logs and outputs, temp() flags included,
  in the parsed workflow), `parse_workflow` (every rule as Snakemake's API parses it, in a fresh process).

Other modules and the tests use these functions and keep no parser of Snakemake's text of their own.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SNAKEMAKE_VERSION = "9.27.1"
SCRIPTS = Path(__file__).resolve().parents[1]


def installed_version() -> str:
    """The version of the installed Snakemake."""
    from importlib.metadata import version

    return version("snakemake")


# ---------------------------------------------------------------------------------------------------------
# printed output


def job_counts(output: str) -> dict[str, int]:
    """Rule -> number of jobs, from the first 'Job stats' table Snakemake prints before a run or dry-run."""
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


def _resource_values(text: str) -> dict[str, object]:
    """'tmpdir=/tmp, mem_mb=3000, mem=3 GB, runtime=10' -> {name: int, float or text}."""
    values = {}
    for item in text.split(", "):
        name, sep, value = item.partition("=")
        if not sep:
            continue
        for kind in (int, float):
            try:
                values[name] = kind(value)
                break
            except ValueError:
                continue
        else:
            values[name] = value
    return values


def listed_jobs(output: str) -> list[dict]:
    """The jobs of a run's or dry-run's job listing, in the order listed. Each: rule; local (listed as
    'localrule': a run's job that runs where Snakemake runs; a dry-run lists every job as 'rule');
    wildcards (e.g. 'subject=001', '' for none); input and output files (sets); resources ({name: value},
    as the job asks the executor for them: the rule's values after the profiles' set-resources and
    default-resources); group_job (the number of the group job it is listed in, counted from 0 in the order
    listed, None outside of one) and group (that group's name, e.g. 'subject')."""
    jobs, group_job, group, groups_seen = [], None, None, 0
    for line in output.splitlines():
        stripped = line.strip()
        header = re.search(r"\] Group job (\S+) ", line)
        if header and not line.startswith(" "):
            group_job, group, groups_seen = groups_seen, header.group(1), groups_seen + 1
        elif stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            inside = line.startswith("    ")
            if not inside:
                group_job = group = None
            jobs.append({"rule": stripped.split()[1].rstrip(":"), "local": stripped.startswith("localrule "),
                         "wildcards": "", "input": set(), "output": set(), "resources": {},
                         "group_job": group_job, "group": group})
        elif jobs and line.startswith("    "):
            key, _, value = stripped.partition(": ")
            if key in ("input", "output"):
                jobs[-1][key] = {f.strip() for f in value.split(",")}
            elif key == "wildcards":
                jobs[-1][key] = value
            elif key == "resources":
                jobs[-1][key] = _resource_values(value)
        elif line and not line.startswith((" ", "[")):
            group_job = group = None  # the listing has ended (e.g. the closing 'Job stats' table)
    return jobs


def planned_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a run's or dry-run's listing names."""
    return {(job["rule"], job["wildcards"]) for job in listed_jobs(output)}


def slurm_run_id(output: str) -> str | None:
    """The run ID the SLURM executor prints ('SLURM run ID: <uuid>') and gives its jobs as job name."""
    found = re.search(r"SLURM run ID: (\S+)", output)
    return found.group(1) if found else None


def finished_rules(log: str) -> set[str]:
    """The rules of the jobs a Snakemake log reports finished ('Finished jobid: 3 (Rule: reconstruct_ct)'),
    e.g. the SLURM log of a group job, which lists its steps."""
    return set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log))


# ---------------------------------------------------------------------------------------------------------
# running it


def dry_run(snakefile: str | Path, configfiles: list[str | Path], profiles: list[str | Path] = (),
            extra_config: dict | None = None) -> str:
    """The output (stdout) of a whole-study dry-run (`--forceall`, with its job listing) in an empty scratch
    folder, so that finished results hide no job. `profiles`: Snakemake profiles, given in this order as
    `--profile` (a later one replaces the top-level keys of an earlier one, as on the command line);
    `extra_config`: a config given after `configfiles`. Raises SystemExit with Snakemake's last lines when
    the dry-run fails."""
    import yaml

    with tempfile.TemporaryDirectory() as scratch:
        files = [str(Path(f).resolve()) for f in configfiles]
        if extra_config:
            extra = Path(scratch) / "extra-config.yaml"
            extra.write_text(yaml.safe_dump(extra_config))
            files.append(str(extra))
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(snakefile), "--directory", scratch]
        if files:
            cmd += ["--configfile", *files]
        for profile in profiles:
            cmd += ["--profile", str(Path(profile).resolve())]
        cmd += ["--dry-run", "--forceall", "--cores", "1"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the dry-run failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


# ---------------------------------------------------------------------------------------------------------
# internals


def resource_value(resource):
    """The value of a Snakemake `Resource` as the profile gave it (the expression text when it is one still
    to be evaluated per job), or `resource` itself when it is already a plain value."""
    if hasattr(resource, "is_evaluable"):
        return resource.raw if resource.is_evaluable() else resource.value
    return resource


def plain_resources(resources) -> dict:
    """`{name: value}` of a Snakemake `Resources` object or any mapping; `{}` for None."""
    return {name: resource_value(value) for name, value in (resources or {}).items()}


def resource_settings(workflow) -> dict:
    """The resource settings of the profiles and the command line, as a workflow sees them while it is
    parsed (`workflow` is the Snakefile's `workflow` object): default_resources {resource: value},
    set_resources {rule: {resource: value}}, custom_resources ({name: value} declared with `resources:`,
    global limits such as gpu=1; not Snakemake's own _cores and _nodes) and set_threads (the rules named
    under `set-threads`). Profile `groups` are not here: Snakemake hands them to the workflow only after
    parsing."""
    settings = workflow.resource_settings
    return {
        "default_resources": plain_resources(settings.default_resources),
        "set_resources": {rule: plain_resources(res) for rule, res in settings.overwrite_resources.items()},
        "custom_resources": {name: value for name, value in plain_resources(settings.resources).items()
                             if not name.startswith("_")},
        "set_threads": list(settings.overwrite_threads),
    }


def rule_files(workflow) -> dict[str, dict]:
    """Rule name -> its wildcards (names), log ([path patterns]) and output ([{path, temp}]: each path
    pattern and whether it is marked temp()), of a parsed workflow (the Snakefile's `workflow` object). The
    patterns are plain ('sub-{subject}'): Snakemake writes the wildcard constraints into its own copies
    ('sub-{subject,[a-zA-Z0-9]+}'), which str.format cannot fill."""
    from snakemake.io import is_flagged, strip_wildcard_constraints

    def plain(f):
        return strip_wildcard_constraints(str(f))

    return {r.name: {"wildcards": sorted(r.wildcard_names), "log": [plain(f) for f in r.log],
                     "output": [{"path": plain(f), "temp": is_flagged(f, "temp")} for f in r.output]}
            for r in workflow.rules}


def _print_parsed_workflow(snakefile: str, workdir: str, *configfiles: str) -> None:
    """Parse the workflow with Snakemake's API and print it as one JSON line (see `parse_workflow`)."""
    import os

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path(snakefile),
                                workdir=Path(workdir),
                                config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles])
                                )._workflow
        rules = rule_files(workflow)
        for rule in workflow.rules:
            base = Path(rule.basedir)
            resources = plain_resources(rule.resources)
            rules[rule.name].update({
                "script": rule.script and str((base / rule.script).resolve()),
                "conda": rule.conda_env and str((base / rule.conda_env).resolve()),
                "library": rule.params.get("library"),
                "kind": {"script": rule.is_script, "shell": rule.is_shell, "run": rule.is_run,
                         "norun": rule.norun},
                "constraints": {k: str(v) for k, v in {**workflow.wildcard_constraints,
                                                       **rule.wildcard_constraints}.items()},
                "group": rule._group,  # `rule.group` is None until an executor is chosen
                "local": rule.name in workflow._localrules,
                "threads": resources.pop("_cores", None),
                "resources": {k: v for k, v in resources.items() if not k.startswith("_")},
            })
    print("PARSED=" + json.dumps({"rules": rules, "pythonpath": os.environ.get("PYTHONPATH")}, default=str))


def parse_workflow(snakefile: str | Path, configfiles: list[str | Path] = (),
                   workdir: str | Path | None = None, env: dict | None = None) -> dict:
    """The workflow as Snakemake's API parses it, in a fresh process (parsing changes the process: sys.path,
    the environment, Snakemake's globals), with `configfiles` and in `workdir` (default: a scratch folder).

    Returns {"rules": rule name -> {script, conda (absolute paths or None), library (the rule's `library`
    parameter), kind ({script, shell, run, norun}: booleans), wildcards (names), constraints (wildcard ->
    regex), output ([{path, temp}]), log (paths), group (the rule's own `group:`), local (named in
    `localrules`), threads, resources ({name: value} the rule declares, Snakemake's own defaults included,
    before any profile)}, "pythonpath": the PYTHONPATH the workflow leaves for its jobs}.
    """
    with tempfile.TemporaryDirectory() as scratch:
        code = (f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); "
                "from dlmi_workflow.snakemake_interface import _print_parsed_workflow; "
                "_print_parsed_workflow(*sys.argv[1:])")
        args = [str(snakefile), str(workdir or scratch), *(str(Path(c).resolve()) for c in configfiles)]
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                                check=False)
    if result.returncode != 0 or "PARSED=" not in result.stdout:
        raise RuntimeError(f"parsing {snakefile} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.split("PARSED=", 1)[1])
