# Sample table, path helpers and input functions shared by every stage.

import os
import sys

# This checkout's library, for the workflow and for its jobs: first on the path here, and on the jobs'
# PYTHONPATH, so that it imports in any interpreter a job runs with (a per-rule conda env, a cluster
# node), whether or not it is installed, and an installed copy elsewhere never shadows it.
SCRIPTS = os.path.normpath(os.path.join(workflow.basedir, "../scripts"))
sys.path.insert(0, SCRIPTS)

import dlmi.cluster
import dlmi.config
import dlmi.runlog
import dlmi.scheduling
import dlmi.sources
from dlmi.cohort import draw_participant, from_config, subject_ids
from snakemake.scheduling.job_scheduler import JobScheduler

dlmi.sources.export_to_jobs(SCRIPTS)
dlmi.scheduling.limit_reevaluation_timers(JobScheduler)  # one wake-up timer, not one per finished job

config.update(
    dlmi.config.validate(config, dlmi.config.load_yaml(workflow.source_path("../schemas/config.schema.yaml")))
)

OUT = config["output_dir"].rstrip("/")
SUBJECTS = subject_ids(config["cohort"]["n_subjects"])
GROUP_SUBJECTS = [s for s in SUBJECTS if s not in config["cohort"]["exclude"]]
ENVS = "../../envs"
# What a subject's own draws depend on: changing the cohort size or exclusions must not re-run any subject.
SUBJECT_DRAWS = {k: config["cohort"][k] for k in ("seed", "ad_fraction", "age_range")}


def subject_effects(wildcards):
    """The disease effect sizes a subject's anatomy depends on: the config's for an AD subject, none for a
    CN subject (its anatomy does not depend on them), so that new effect sizes re-run only AD subjects."""
    participant = draw_participant(config["cohort"]["seed"], wildcards.subject, from_config(SUBJECT_DRAWS))
    return config["anatomy"]["effects"] if participant["group"] == "AD" else None


wildcard_constraints:
    subject=r"[0-9]{3,4}",


def library(script):
    """The `library` parameter of a rule: a content hash of each dlmi module its script imports, read
    from the imports themselves, so that editing a module reruns exactly the rules that run it."""
    return dlmi.sources.library_version(os.path.join(SCRIPTS, f"{script}.py"))


def sub(datatype, suffix):
    """BIDS-derivative path of one subject's file: results/sub-001/<datatype>/sub-001_<suffix>
    (no datatype folder when `datatype` is empty)."""
    folder = f"{OUT}/sub-{{subject}}/{datatype}/" if datatype else f"{OUT}/sub-{{subject}}/"
    return f"{folder}sub-{{subject}}_{suffix}"


def study(name):
    return f"{OUT}/{name}"


def group(name):
    return f"{OUT}/group/{name}"


def template(suffix):
    return f"{OUT}/template/tpl-MNI152_{suffix}"


def per_subject(path):
    """Expand a per-subject path over the subjects of the group stage."""
    return expand(path, subject=GROUP_SUBJECTS)


def logfile(rule_name, subject=True):
    return f"logs/{rule_name}/sub-{{subject}}.log" if subject else f"logs/{rule_name}.log"


def benchfile(rule_name, subject=True):
    return f"benchmarks/{rule_name}/sub-{{subject}}.tsv" if subject else f"benchmarks/{rule_name}.tsv"


QC_STAGES = ["truth_t1", "recon_t1", "recon_ct", "recon_pet", "warped_t1", "pet_in_t1", "segmentation"]


def group_outputs():
    return [
        study("dataset_description.json"),
        study("participants.tsv"),
        group("features.tsv"),
        group("metrics.tsv"),
        group("recon_quality.tsv"),
        group("registration_quality.tsv"),
        group("segmentation_quality.tsv"),
        group("roc.png"),
        expand(group("qc/{stage}.png"), stage=QC_STAGES),
    ]


def qc_sources(stage):
    """Path patterns of the image and of the overlay (None if the stage has none) of one QC figure."""
    return {
        "truth_t1": (rules.simulate_mri.output.truth, None),
        "recon_t1": (rules.reconstruct_mri.output.t1w, None),
        "recon_ct": (rules.reconstruct_ct.output.ct, None),
        "recon_pet": (rules.reconstruct_pet.output.pet, None),
        "warped_t1": (rules.register_t1.output.warped, rules.build_template.output.brain),
        "pet_in_t1": (rules.reconstruct_mri.output.t1w, rules.register_pet.output.pet_in_t1),
        "segmentation": (rules.reconstruct_mri.output.t1w, rules.segment_t1.output.tissue),
    }[stage]


def qc_inputs(wildcards):
    """Per-subject images (and overlays, if the stage has them) of one QC figure."""
    image, overlay = qc_sources(wildcards.stage)
    inputs = {"images": per_subject(image)}
    if overlay is not None:
        inputs["overlays"] = per_subject(overlay) if "{subject}" in overlay else [overlay]
    return inputs


def group_waiting_message(snakemake_log):
    """After a failed run: the line saying which subjects the group stage waits for (or None).

    A subject failed when the run's log (`snakemake_log`: a path, a list of paths or None) has a failed job
    of it; another subject is unfinished when a per-subject file that a group rule reads is missing."""
    patterns = {rules.extract_features.output.tsv, *rules.assess_quality.output}
    patterns.update(p for stage in QC_STAGES for p in qc_sources(stage) if p and "{subject}" in p)
    waiting = [s for s in GROUP_SUBJECTS if not all(os.path.exists(p.format(subject=s)) for p in patterns)]
    logs = [snakemake_log] if isinstance(snakemake_log, str) else list(snakemake_log or [])
    text = "".join(open(path).read() for path in logs if os.path.exists(path))
    failed = [s for s in dlmi.runlog.failed_subjects(text) if s in GROUP_SUBJECTS]
    return dlmi.runlog.group_waiting_message(failed, [s for s in waiting if s not in failed])


def check_profile_resources():
    """Stop at parse time, before any submission, when the profile's resources would be ignored by the
    SLURM executor or ask for a GPU under device: cpu (see dlmi.cluster). Called at the end of the
    Snakefile, once every rule exists."""
    settings = workflow.resource_settings
    errors = dlmi.cluster.profile_errors(
        dlmi.cluster.plain_resources(settings.default_resources),
        {rule: dlmi.cluster.plain_resources(res) for rule, res in settings.overwrite_resources.items()},
        device=config["device"],
        rules=[rule.name for rule in workflow.rules],
        custom_resources=list(settings.resources),
        set_threads=list(settings.overwrite_threads),
    )
    if errors:
        raise dlmi.cluster.ProfileError("\n".join(errors))
