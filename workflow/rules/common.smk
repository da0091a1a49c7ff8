# Sample table, path helpers and input functions shared by every stage.

import os
import re
import sys

# This checkout's library, for the workflow and for its jobs: first on the path here, and on the jobs'
# PYTHONPATH, so that it imports in any interpreter a job runs with (a per-rule conda env, a cluster
# node), whether or not it is installed, and an installed copy elsewhere never shadows it.
SCRIPTS = os.path.normpath(os.path.join(workflow.basedir, "../scripts"))
sys.path.insert(0, SCRIPTS)

import dlmi.analysis.design
import dlmi_workflow.bids
import dlmi_workflow.cluster
import dlmi_workflow.config
import dlmi_workflow.dataset
import dlmi_workflow.runlog
import dlmi_workflow.scheduling
import dlmi_workflow.sources
import dlmi_workflow.snakemake_interface
from dlmi.sim.cohort import draw_participant, from_config
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.scheduling.job_scheduler import JobScheduler

dlmi_workflow.sources.export_to_jobs(SCRIPTS)
dlmi_workflow.scheduling.limit_reevaluation_timers(
    JobScheduler
)  # one wake-up timer, not one per finished job

config.update(
    dlmi_workflow.config.validate(
        config, dlmi_workflow.config.load_yaml(workflow.source_path("../schemas/config.schema.yaml"))
    )
)

OUT = config["output_dir"].rstrip("/")


def discover_dataset():
    """The researcher's BIDS dataset of config input.bids_dir (None for a simulated study), discovered at
    parse time; one line per problem and per choice among several images (dlmi_workflow.dataset)."""
    if config["input"]["bids_dir"] is None:
        return None
    try:
        dataset = dlmi_workflow.dataset.discover(config)
    except dlmi_workflow.dataset.DatasetError as err:
        raise WorkflowError(str(err)) from None
    for line in dataset.choices:
        logger.info(f"input: {line}")
    for line in dataset.problems:
        logger.warning(f"input: {line}")
    if not dataset.t1w:
        raise WorkflowError(f"config key 'input.bids_dir': {dataset.root}: no T1w image to analyse")
    return dataset


# The seam between acquisition and analysis: a simulated study simulates and reconstructs its subjects; a
# BIDS study (input.bids_dir) reads each subject's T1w from the dataset and plans no simulation. Either way
# the analysis rules read a T1w image at a BIDS path (analysis_t1w, below).
DATASET = discover_dataset()
if DATASET is None:
    SUBJECTS = list(dlmi_workflow.bids.study_subjects(config))  # a simulated study has no sessions
    GROUP_SUBJECTS = [s for s in SUBJECTS if s not in config["cohort"]["exclude"]]
else:
    SUBJECTS = sorted(DATASET.t1w)
    # subjects without a mapped diagnosis are analysed up to their features, outside the group tables
    GROUP_SUBJECTS = [s for s in SUBJECTS if s in DATASET.groups] or SUBJECTS
SIMULATED = DATASET is None  # truth exists: the quality tables against it are made
HAS_PET = SIMULATED  # a BIDS study reads T1w images only
# What a subject's own draws depend on: changing the cohort size or exclusions must not re-run any subject.
SUBJECT_DRAWS = {
    k: config["cohort"][k]
    for k in ("seed", "ad_fraction", "mci_fraction", "age_range", "amyloid_positive", "conversion_risk")
}
# The group stage's participants as planning knows them (drawn, or the BIDS dataset's diagnoses): a task
# without enough subjects of both its classes is not planned, with a line saying why, and the others run.
if SIMULATED:
    drawn_cohort = from_config(SUBJECT_DRAWS)
    PLANNING_PARTICIPANTS = [
        draw_participant(config["cohort"]["seed"], s, drawn_cohort) for s in GROUP_SUBJECTS
    ]
else:
    PLANNING_PARTICIPANTS = [{"group": DATASET.groups[s]} for s in GROUP_SUBJECTS if s in DATASET.groups]
try:
    MODEL, dropped = dlmi_workflow.dataset.model_settings(
        config["model"], has_pet=HAS_PET, participants=PLANNING_PARTICIPANTS
    )
except ValueError as err:
    raise WorkflowError(str(err)) from None
for line in dropped:
    logger.warning(f"model: {line}")
PLAN_MODEL = bool(MODEL["tasks"]) and bool(MODEL["feature_sets"])
if not PLAN_MODEL:
    logger.warning(
        "model: the group models are not planned (no task has enough subjects of both its classes, or no "
        "feature set is left)"
    )
ENVS = "../../envs"


# The U-Net (workflow/rules/unet.smk): its training cohort, apart from the study's, and its checkpoint.
UNET = config["segmentation"]["unet"]
TRAINING = f"{OUT}/training"
TRAINING_SUBJECTS = dlmi_workflow.bids.training_subjects(config)
TRAINING_DRAWS = {
    "seed": UNET["training_cohort"]["seed"],
    **{k: SUBJECT_DRAWS[k] for k in ("ad_fraction", "age_range")},
}
UNET_DEVICE = config["device"] if UNET["device"] == "study" else UNET["device"]
# A relative checkpoint path is relative to the repository (the shipped weights lie in its resources/).
UNET_CHECKPOINT = (
    f"{TRAINING}/unet/unet.pt"
    if UNET["train"]
    else os.path.normpath(os.path.join(workflow.basedir, "..", UNET["checkpoint"]))
)
# The U-Net segments the study when it is trained here, or its checkpoint exists and was trained for the study's
# voxel size (its metadata sidecar says so); the atlas method needs neither.
UNET_READY = UNET["train"] or os.path.exists(UNET_CHECKPOINT)
UNET_MISFIT = (
    None
    if UNET["train"]
    else dlmi_workflow.config.checkpoint_misfit(UNET_CHECKPOINT, config["anatomy"]["voxel_mm"])
)
if config["segmentation"]["method"] == "unet":
    if not UNET_READY:
        raise WorkflowError(
            f"segmentation.method: unet needs a checkpoint, and segmentation.unet.checkpoint ({UNET_CHECKPOINT}) "
            "does not exist: train one with `make train-unet`, or set segmentation.unet.train: true"
        )
    if UNET_MISFIT:
        raise WorkflowError(f"segmentation.method: unet: {UNET_MISFIT}")
elif UNET_READY and UNET_MISFIT:
    logger.warning(f"the U-Net does not segment this study (atlas method only): {UNET_MISFIT}")
    UNET_READY = False


def training_effects(wildcards):
    """As `subject_effects`, for a subject of the U-Net's training cohort (drawn from its own seed)."""
    participant = draw_participant(TRAINING_DRAWS["seed"], wildcards.subject, from_config(TRAINING_DRAWS))
    return None if participant["group"] == "CN" else config["anatomy"]["effects"]


def subject_effects(wildcards):
    """The disease effect sizes a subject's anatomy depends on: the config's for an MCI or AD subject, none for
    a CN subject (its anatomy does not depend on them), so that new effect sizes re-run only the patients."""
    participant = draw_participant(config["cohort"]["seed"], wildcards.subject, from_config(SUBJECT_DRAWS))
    return None if participant["group"] == "CN" else config["anatomy"]["effects"]


# The group models (workflow/rules/model.smk): one cross_validate job per (task, model, feature set).
PARTICIPANTS_SCHEMA = dlmi_workflow.dataset.participants_schema(
    dlmi_workflow.config.load_yaml(workflow.source_path("../schemas/participants.schema.yaml")),
    simulated=SIMULATED,
)
MODEL_VALIDATION = ("cv_folds", "inner_folds", "permutations", "bootstrap", "ci_level")


def one_of(names):
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


IMAGE_CLASSIFIERS = dlmi.analysis.design.IMAGE_CLASSIFIERS


def model_job_settings(task, model, features):
    """What one cross_validate job depends on: its own task, classifier grid and feature columns and the
    validation settings, nothing of the other jobs."""
    classifier = MODEL["classifiers"][model]
    return {
        "task": task,
        "model": model,
        "grid": classifier["grid"],
        "features": features,
        "columns": MODEL["feature_sets"][features],
        "scores": dlmi.analysis.design.score_inputs(MODEL["feature_sets"], features),
        **{key: MODEL[key] for key in MODEL_VALIDATION},
        "permutations": classifier.get("permutations", MODEL["permutations"]),
        "repeats": classifier.get("repeats"),
    }


def design_source(features):
    """The file a feature set's design matrix comes from: the gathered images for an image set, else the
    features table."""
    image = dlmi.analysis.design.image_of(MODEL["feature_sets"][features])
    if image is not None:
        return rules.gather_images.output.images.format(image=image)
    return rules.gather_features.output.tsv


def image_source(image):
    """Path pattern of one subject's image of an image feature set (dlmi.analysis.design.IMAGES)."""
    if image == "T1w":
        return analysis_t1w()
    return getattr(rules.segment_t1.output, image.lower())


def model_job_outputs(kind):
    """The `kind` ("metrics" or "predictions") files of every (task, model, feature set) job: each
    classifier on the feature sets it runs on (MODEL["classifier_sets"])."""
    return [
        group(f"models/{task}/{model}/{features}/{kind}.tsv")
        for task in MODEL["tasks"]
        for model, feature_sets in MODEL["classifier_sets"].items()
        for features in feature_sets
    ]


wildcard_constraints:
    subject=dlmi_workflow.bids.LABEL,
    task=one_of(MODEL["tasks"]),
    model=one_of(MODEL["classifiers"]),
    features=one_of(MODEL["feature_sets"]),


def attach_library_versions():
    """Give each script-running rule its `library` parameter (the code hashes of the dlmi modules that its own
    `script:` imports, dlmi_workflow.sources), so that editing a module reruns exactly the rules that run it.
    Called at the end of the Snakefile, once every rule exists; a rule's script must lie in scripts/."""
    for each in workflow.rules:  # (a variable cannot be called "rule" in a Snakefile)
        if each.script:
            script = os.path.join(SCRIPTS, os.path.basename(each.script))
            if not os.path.isfile(script):
                raise WorkflowError(f"the script {each.script} of {each.name} is not in {SCRIPTS}")
            each.set_params(library=dlmi_workflow.sources.library_version(script))


def source_t1w(wildcards):
    """A BIDS study's T1w image of one subject, as chosen at parse time (dlmi_workflow.dataset.choose)."""
    return DATASET.t1w[wildcards.subject].path


def analysis_t1w():
    """The seam between acquisition and analysis: the T1w image (path pattern) every analysis rule reads, a
    simulated subject's reconstruction or a BIDS subject's conformed scan."""
    return rules.reconstruct_mri.output.t1w if SIMULATED else rules.conform_t1w.output.t1w


def sub(datatype, name):
    """BIDS-derivative path of one subject's file: results/sub-{subject}/<datatype>/sub-{subject}_<name>
    (no datatype folder when `datatype` is empty)."""
    return dlmi_workflow.bids.bids_path(OUT, datatype, name)


def training_sub(datatype, name):
    """Path of one training subject's file: results/training/sub-{subject}/<datatype>/sub-{subject}_<name>."""
    return dlmi_workflow.bids.bids_path(TRAINING, datatype, name)


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


QC_STAGES = (
    ["truth_t1", "recon_t1", "recon_ct", "recon_pet", "warped_t1", "pet_in_t1", "segmentation"]
    if SIMULATED
    else ["preproc_t1", "warped_t1", "segmentation"]
) + (["unet_segmentation"] if UNET_READY else [])


def group_outputs():
    """The study's targets: the group tables and figures, the quality tables where truth exists, and the
    features of subjects outside the group tables (a BIDS subject without a mapped diagnosis)."""
    outside = [s for s in SUBJECTS if s not in GROUP_SUBJECTS and s not in config["cohort"]["exclude"]]
    return [
        study("dataset_description.json"),
        group("features.tsv"),
        expand(group("qc/{stage}.png"), stage=QC_STAGES),
        expand(sub("", "features.tsv"), subject=outside),
        *([study("participants.tsv")] if SIMULATED or PLAN_MODEL else []),
        *([group("metrics.tsv"), group("roc.png"), group("confusion.png")] if PLAN_MODEL else []),
        *(
            [group("recon_quality.tsv"), group("registration_quality.tsv"), group("segmentation_quality.tsv")]
            if SIMULATED
            else []
        ),
    ]


def qc_sources(stage):
    """Path patterns of the image and of the overlay (None if the stage has none) of one QC figure."""
    return {
        "truth_t1": (rules.simulate_mri.output.truth, None),
        "recon_t1": (rules.reconstruct_mri.output.t1w, None),
        "preproc_t1": (rules.conform_t1w.output.t1w, None),
        "recon_ct": (rules.reconstruct_ct.output.ct, None),
        "recon_pet": (rules.reconstruct_pet.output.pet, None),
        "warped_t1": (rules.register_t1.output.warped, rules.build_template.output.brain),
        "pet_in_t1": (analysis_t1w(), rules.register_pet.output.pet_in_t1),
        "segmentation": (analysis_t1w(), rules.segment_t1.output.tissue),
        "unet_segmentation": (analysis_t1w(), rules.segment_unet.output.dseg),
    }[stage]


def qc_inputs(wildcards):
    """Per-subject images (and overlays, if the stage has them) of one QC figure."""
    image, overlay = qc_sources(wildcards.stage)
    inputs = {"images": per_subject(image)}
    if overlay is not None:
        inputs["overlays"] = per_subject(overlay) if "{subject}" in overlay else [overlay]
    return inputs


def group_waiting_message():
    """After a failed run: the lines saying which subjects the group stage waits for (or None).

    A subject failed when one of its jobs left its own log (logs/<rule>/sub-<label>.log) but not all its
    outputs (dlmi_workflow.runlog.failed_subjects); another subject is unfinished when a per-subject file
    that a group rule reads is missing."""
    files = dlmi_workflow.snakemake_interface.rule_files(workflow)
    # per-subject rule -> (its log, its outputs but the temporary ones, which Snakemake deletes after use)
    per_subject = {
        name: (f["log"][0], [o["path"] for o in f["output"] if not o["temp"]])
        for name, f in files.items()
        if f["wildcards"] == ["subject"] and f["log"]
    }
    jobs = [
        (s, name, log.format(subject=s), [o.format(subject=s) for o in outputs])
        for s in GROUP_SUBJECTS
        for name, (log, outputs) in per_subject.items()
    ]
    failed = dlmi_workflow.runlog.failed_subjects(jobs)
    patterns = {rules.extract_features.output.tsv, *(rules.assess_quality.output if SIMULATED else [])}
    patterns.update(p for stage in QC_STAGES for p in qc_sources(stage) if p and "{subject}" in p)
    waiting = [s for s in GROUP_SUBJECTS if not all(os.path.exists(p.format(subject=s)) for p in patterns)]
    return dlmi_workflow.runlog.group_waiting_message(failed, [s for s in waiting if s not in failed])


def grid_mem(mb_at_2mm):
    """The mem_mb of jobs that hold images of the anatomy grid; `mb_at_2mm` is the value on the default 2 mm
    grid, grown with the voxel count on the config's finer anatomy.voxel_mm (dlmi_workflow.cluster)."""
    return dlmi_workflow.cluster.grid_mem_mb(mb_at_2mm, config["anatomy"]["voxel_mm"])


def raw_data(path):
    """A raw-data output (MRI k-space, CT or PET sinogram), temporary under the config's storage.temp_raw
    (Snakemake then deletes it once the jobs that read it have finished), else a plain output."""
    return temp(path) if config["storage"]["temp_raw"] else path


def check_profile_resources():
    """Stop at parse time, before any submission, when the profile's resources would be ignored by the
    SLURM executor or ask for a GPU under device: cpu (see dlmi_workflow.cluster). Called at the end of the
    Snakefile, once every rule exists."""
    settings = dlmi_workflow.snakemake_interface.resource_settings(workflow)
    errors = dlmi_workflow.cluster.profile_errors(
        settings["default_resources"],
        settings["set_resources"],
        device=config["device"],
        rules=[r.name for r in workflow.rules],
        custom_resources=settings["custom_resources"],
        set_threads=settings["set_threads"],
    )
    if errors:
        raise dlmi_workflow.cluster.ProfileError("\n".join(errors))
