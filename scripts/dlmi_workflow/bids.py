"""BIDS names for the workflow: the study's subjects and sessions, label patterns and every derivative path.

One place decides what a subject is and how its files are named, so that a simulated cohort and a real
BIDS dataset (later discovered with pybids, see docs/bids.md) run through the same rules:

- `study_subjects(config)` gives the study's subjects and their sessions at parse time;
- `training_subjects(config)` gives the U-Net's training cohort (config key segmentation.unet.training_cohort),
  simulated apart from the study: its own labels and its own seed (`training_seed`);
- `LABEL` is the pattern of a BIDS label (alphanumeric), used for the wildcard constraints, the config
  schema's subject lists and the participants table;
- `bids_path` builds every per-subject path: `<root>/sub-<s>[/ses-<t>]/<datatype>/sub-<s>[_ses-<t>]_<name>`.
"""
from __future__ import annotations

import re

LABEL = r"[a-zA-Z0-9]+"  # BIDS label: letters and digits, no "-" or "_"


def is_label(text: str) -> bool:
    return re.fullmatch(LABEL, text) is not None


def study_subjects(config: dict) -> dict[str, tuple[str, ...]]:
    """The study's subjects at parse time: subject label -> its session labels (empty: no sessions).

    A simulated study has `cohort.n_subjects` subjects labelled 001, 002, ... (zero-padded to at least three
    digits, so that they sort in order) and no sessions.
    """
    return dict.fromkeys(simulated_subjects(config["cohort"]["n_subjects"]), ())


def simulated_subjects(n: int) -> list[str]:
    """Labels of a simulated cohort of n subjects: ["001", "002", ...], zero-padded to at least 3 digits."""
    width = max(3, len(str(int(n))))
    return [f"{i:0{width}d}" for i in range(1, int(n) + 1)]


def training_subjects(config: dict) -> list[str]:
    """Labels of the U-Net's training cohort: label_prefix + the simulated labels, e.g. train001, train002, ...

    config: the study config with defaults (segmentation.unet.training_cohort: n_subjects, label_prefix).
    Every draw of a training subject derives from (`training_seed(config)`, its label, purpose), so it shares
    no seed with a study subject as long as the labels differ; `dlmi_workflow.config` refuses a config in
    which they do not, or in which the two cohorts' seeds are equal.
    """
    cohort = config["segmentation"]["unet"]["training_cohort"]
    return [f"{cohort['label_prefix']}{label}" for label in simulated_subjects(cohort["n_subjects"])]


def training_seed(config: dict) -> int:
    """The seed of the training cohort (config key segmentation.unet.training_cohort.seed), the `study_seed`
    argument of `dlmi.seeding.derive_seed` for every draw of a training subject."""
    return int(config["segmentation"]["unet"]["training_cohort"]["seed"])


def bids_path(root: str, datatype: str, name: str, *, subject: str = "{subject}", session: str | None = None) -> str:
    """Path of one subject's file in a BIDS (derivative) dataset at `root`.

    datatype: "anat", "pet", "ct", ... or "" for a file at the subject level; name: the entities after the
    subject's and the suffix with extension, e.g. "space-T1w_desc-osem_pet.nii.gz". subject and session are
    labels or wildcard patterns such as "{subject}". Example:
    bids_path("results", "anat", "T1w.nii.gz", subject="001") == "results/sub-001/anat/sub-001_T1w.nii.gz".
    """
    entities = [f"sub-{subject}"] + ([f"ses-{session}"] if session is not None else [])
    folder = "/".join([root, *entities, datatype] if datatype else [root, *entities])
    return f"{folder}/{'_'.join(entities)}_{name}"

