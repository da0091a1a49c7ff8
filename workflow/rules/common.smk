# Sample table, path helpers and input functions shared by every stage.

import dlmi.cluster
import dlmi.config
from dlmi.cohort import subject_ids

config.update(
    dlmi.config.validate(config, dlmi.config.load_yaml(workflow.source_path("../schemas/config.schema.yaml")))
)

OUT = config["output_dir"].rstrip("/")
SUBJECTS = subject_ids(config["cohort"]["n_subjects"])
GROUP_SUBJECTS = [s for s in SUBJECTS if s not in config["cohort"]["exclude"]]
ENVS = "../../envs"
# What a subject's own draws depend on: changing the cohort size or exclusions must not re-run any subject.
SUBJECT_DRAWS = {k: config["cohort"][k] for k in ("seed", "ad_fraction", "age_range")}


wildcard_constraints:
    subject=r"[0-9]{3,4}",


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
        study("participants.tsv"),
        group("features.tsv"),
        group("metrics.tsv"),
        group("recon_quality.tsv"),
        group("registration_quality.tsv"),
        group("segmentation_quality.tsv"),
        group("roc.png"),
        expand(group("qc/{stage}.png"), stage=QC_STAGES),
    ]


def qc_inputs(wildcards):
    """Per-subject images (and overlays, if the stage has them) of one QC figure."""
    image, overlay = {
        "truth_t1": (rules.simulate_mri.output.truth, None),
        "recon_t1": (rules.reconstruct_mri.output.t1w, None),
        "recon_ct": (rules.reconstruct_ct.output.ct, None),
        "recon_pet": (rules.reconstruct_pet.output.pet, None),
        "warped_t1": (rules.register_t1.output.warped, rules.build_template.output.brain),
        "pet_in_t1": (rules.reconstruct_mri.output.t1w, rules.register_pet.output.pet_in_t1),
        "segmentation": (rules.reconstruct_mri.output.t1w, rules.segment_t1.output.tissue),
    }[wildcards.stage]
    inputs = {"images": per_subject(image)}
    if overlay is not None:
        inputs["overlays"] = per_subject(overlay) if "{subject}" in overlay else [overlay]
    return inputs


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
