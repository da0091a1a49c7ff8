"""Provenance record names over the whole planned study: no record overwrites an output or another job's."""
from collections import defaultdict

from conftest import snakemake

from dlmi_workflow import provenance
from dlmi_workflow.snakemake_interface import listed_jobs


def test_records_collide_with_no_output_and_no_other_job(tmp_path):
    result = snakemake(tmp_path, "--dry-run", "--cores", "1", configs=[{"cohort": {"n_subjects": 3}}])
    jobs = [sorted(job["output"]) for job in listed_jobs(result.stdout) if job["output"]]
    every_output = {f for job in jobs for f in job}
    assert len(jobs) > 40 and "results/dataset_description.json" in every_output
    owner = defaultdict(set)
    for k, job in enumerate(jobs):
        for output in job:
            owner[str(provenance.sidecar_path(output))].add(k)
    assert not set(owner) & every_output
    assert {record: jobs_ for record, jobs_ in owner.items() if len(jobs_) > 1} == {}
