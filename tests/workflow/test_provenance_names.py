"""Provenance record names over the whole planned study: no record overwrites an output or another job's."""
from collections import defaultdict

from conftest import snakemake

from dlmi import provenance


def planned_outputs(log: str) -> list[list[str]]:
    """The output files of every job a dry-run lists, one list per job."""
    jobs, current = [], None
    for line in log.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            current = []
            jobs.append(current)
        elif current is not None and stripped.startswith("output:"):
            current.extend(f.strip() for f in stripped.removeprefix("output:").split(","))
    return [job for job in jobs if job]


def test_records_collide_with_no_output_and_no_other_job(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configs=[{"cohort": {"n_subjects": 3}}])
    jobs = planned_outputs(result.stdout)
    every_output = {f for job in jobs for f in job}
    assert len(jobs) > 40 and "results/dataset_description.json" in every_output
    owner = defaultdict(set)
    for k, job in enumerate(jobs):
        for output in job:
            owner[str(provenance.sidecar_path(output))].add(k)
    assert not set(owner) & every_output
    assert {record: jobs_ for record, jobs_ in owner.items() if len(jobs_) > 1} == {}
