"""DICOM to BIDS, a step before the study: each subject's DICOM series converted with dcm2niix, the
T1-weighted ones named as BIDS T1w images; the study then reads that dataset (config input.bids_dir).

    python -m dlmi_workflow.dicom DICOM_DIR BIDS_DIR [--t1w-pattern REGEX] [--log FILE]
    make dicom-to-bids DICOM=DICOM_DIR BIDS=BIDS_DIR

DICOM_DIR holds one folder per subject named by its BIDS label (`DICOM_DIR/01/...`, any nesting below);
a subject folder whose sub-folders are all named `ses-<label>` has sessions. A series is a T1w when its
SeriesDescription (else ProtocolName) matches the pattern (default `T1_PATTERN`); several T1w series of one
session become run-1, run-2, ... in series-number order. Everything else is left out with a log line. A
folder that does not convert gets one line (dcm2niix's reason) and the other subjects proceed; the exit
status is then 1. dcm2niix writes each image's BIDS sidecar (acquisition parameters, no patient name).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dlmi_workflow.bids import bids_path, is_label

T1_PATTERN = r"(?i)t1|mprage|mp-rage|spgr|bravo|tfe"
log = logging.getLogger("dicom_to_bids")


def dcm2niix() -> str:
    """The dcm2niix executable: the one installed beside this Python (the `dcm2niix` wheel), else on PATH."""
    beside = Path(sys.executable).parent / "dcm2niix"
    found = str(beside) if beside.exists() else shutil.which("dcm2niix")
    if found is None:
        raise FileNotFoundError("dcm2niix is not installed (pip install dcm2niix; it is in requirements.txt)")
    return found


def sessions(subject_dir: Path) -> list[tuple[str | None, Path]]:
    """(session label or None, folder) of one subject's DICOM folder."""
    children = [p for p in sorted(subject_dir.iterdir()) if p.is_dir()]
    if children and all(p.name.startswith("ses-") and is_label(p.name[4:]) for p in children):
        return [(p.name[4:], p) for p in children]
    return [(None, subject_dir)]


def convert_folder(folder: Path, out: Path) -> tuple[list[tuple[Path, dict]], str | None]:
    """Run dcm2niix on one folder (recursively) into `out`: [(NIfTI path, its sidecar)], and dcm2niix's
    reason when it converted nothing (else None)."""
    result = subprocess.run([dcm2niix(), "-b", "y", "-ba", "y", "-z", "y", "-f", "%s_%d", "-o", str(out), str(folder)],
                            capture_output=True, text=True, check=False)
    images = []
    for nifti in sorted(out.glob("*.nii.gz")):
        sidecar = nifti.with_name(nifti.name[:-7] + ".json")
        images.append((nifti, json.loads(sidecar.read_text()) if sidecar.exists() else {}))
    if images:
        return images, None
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    reasons = [line for line in lines if re.match(r"(?i)(error|warning|unable|no valid)", line)]
    return [], (reasons or lines or [f"dcm2niix exit status {result.returncode}"])[-1]


def description(sidecar: dict) -> str:
    return str(sidecar.get("SeriesDescription") or sidecar.get("ProtocolName") or "")


def to_bids(dicom_dir, bids_dir, t1w_pattern: str = T1_PATTERN) -> list[str]:
    """Convert every subject folder of `dicom_dir` into the BIDS dataset `bids_dir` (created when absent,
    with its dataset_description.json and a participants.tsv of participant_id to complete). Returns one line
    per problem (a folder that did not convert); each conversion and each series left out is logged."""
    dicom_dir, bids_dir = Path(dicom_dir), Path(bids_dir)
    if not dicom_dir.is_dir():
        raise FileNotFoundError(f"{dicom_dir}: no such DICOM folder")
    pattern = re.compile(t1w_pattern)
    problems, converted = [], []
    for subject_dir in sorted(p for p in dicom_dir.iterdir() if p.is_dir()):
        subject = subject_dir.name.removeprefix("sub-")
        if not is_label(subject):
            problems.append(f"{subject_dir}: folder name is not a BIDS subject label (letters and digits); left out")
            continue
        for session, folder in sessions(subject_dir):
            with tempfile.TemporaryDirectory() as tmp:
                images, reason = convert_folder(folder, Path(tmp))
                if reason is not None:
                    problems.append(f"{folder}: no series converted (dcm2niix: {reason})")
                    continue
                t1w = []
                for nifti, sidecar in images:
                    if pattern.search(description(sidecar)):
                        t1w.append((int(sidecar.get("SeriesNumber", 0)), nifti))
                    else:
                        log.info("%s: series %s %r is not a T1w (pattern %s); left out", folder,
                                 sidecar.get("SeriesNumber", "?"), description(sidecar), t1w_pattern)
                for k, (_, nifti) in enumerate(sorted(t1w), start=1):
                    run = f"run-{k}_" if len(t1w) > 1 else ""
                    target = Path(bids_path(str(bids_dir), "anat", f"{run}T1w.nii.gz", subject=subject,
                                            session=session))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(nifti, target)
                    sidecar_path = nifti.with_name(nifti.name[:-7] + ".json")
                    if sidecar_path.exists():
                        shutil.move(sidecar_path, target.with_name(target.name[:-7] + ".json"))
                    log.info("%s -> %s", folder, target)
                if t1w:
                    converted.append(subject)
                else:
                    log.warning("%s: no T1w series among %d converted", folder, len(images))
    _describe(bids_dir, converted)
    for line in problems:
        log.error(line)
    log.info("%d subject(s) with T1w images, %d problem(s)", len(set(converted)), len(problems))
    return problems


def _describe(bids_dir: Path, subjects: list[str]) -> None:
    """dataset_description.json and participants.tsv of the new dataset, when it has none yet."""
    bids_dir.mkdir(parents=True, exist_ok=True)
    description_path = bids_dir / "dataset_description.json"
    if not description_path.exists():
        version = subprocess.run([dcm2niix(), "-v"], capture_output=True, text=True, check=False).stdout.strip()
        description_path.write_text(json.dumps({
            "Name": bids_dir.name, "BIDSVersion": "1.9.0", "DatasetType": "raw",
            "GeneratedBy": [{"Name": "dcm2niix", "Version": version.split("version ")[-1].split()[0] if version else "?"},
                            {"Name": "dlmi-workflow", "Description": "python -m dlmi_workflow.dicom"}]}, indent=2))
    participants = bids_dir / "participants.tsv"
    if not participants.exists() and subjects:
        participants.write_text("participant_id\n" + "".join(f"sub-{s}\n" for s in sorted(set(subjects))))
        log.warning("%s: lists the participants only; add the diagnosis column (config input.diagnosis.column)",
                    participants)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlmi_workflow.dicom", description=__doc__.split("\n\n")[0])
    parser.add_argument("dicom_dir")
    parser.add_argument("bids_dir")
    parser.add_argument("--t1w-pattern", default=T1_PATTERN, help="regular expression on SeriesDescription")
    parser.add_argument("--log", default="logs/dicom_to_bids.log")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.log) or ".", exist_ok=True)
    handlers = [logging.FileHandler(args.log), logging.StreamHandler()]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        problems = to_bids(args.dicom_dir, args.bids_dir, args.t1w_pattern)
    except FileNotFoundError as err:
        log.error("%s", err)
        return 2
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
