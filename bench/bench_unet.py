"""Benchmark: U-Net segmentation with the shipped checkpoint against the atlas method, on the same subject.

Data: a validation subject of the U-Net's training cohort (never trained on), simulated at the default
study's 2 mm and acquired like a study subject, through the workflow's own rule scripts
(bench/unet_subjects.py). Ours: `segment_unet` (load the checkpoint, normalise, sliding-window inference,
write the labels). Peer: the atlas method as the study runs it,
`register_t1` (affine + SVF registration to the template) then `segment_t1` (label propagation and
partial-volume tissue fractions). Both are timed end to end, one job each, with the rule's thread count (1).
Quality: mean Dice of the left and right hippocampus against the truth (the atlas method's hippocampus is its
region label within its grey matter, as in the study's features).

    python bench/bench_unet.py [cpu|cuda]
"""
from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import numpy as np
import register_t1
import segment_t1
import torch
import unet_subjects

from dlmi import io
from dlmi.analysis import metrics
from dlmi.labels import REGIONS, TISSUE_LABELS, UNET_LABELS
from dlmi_workflow.bids import training_subjects


def _timed(run, device: torch.device) -> float:
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def rows(device: str) -> list[dict]:
    """One row: U-Net inference vs the atlas method (registration + propagation) on one 2-mm brain."""
    if not unet_subjects.CHECKPOINT.is_file():
        print(f"bench_unet: no U-Net row: {unet_subjects.CHECKPOINT} is not shipped yet (make train-unet)",
              file=sys.stderr)
        return []
    dev = torch.device(device)
    config = unet_subjects.study_config()
    label = training_subjects(config)[-1]  # a validation subject: never trained on
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        tpl = unet_subjects.template(folder, config)
        f = unet_subjects.subject(folder, label, config, tpl, training=True)
        dseg = []
        ours_s = _timed(lambda: dseg.append(unet_subjects.segment(folder, f["t1w"], config, device=device)), dev)
        reg = {"xfm": folder / "xfm.txt", "velocity": folder / "velocity.nii.gz", "warped": folder / "warped.nii.gz"}
        atlas_out = {name: folder / f"atlas_{name}.nii.gz" for name in ("csf", "gm", "wm", "tissue", "regions")}

        def atlas_method():
            register_t1.main(f["t1w"], tpl["t1w"], reg["xfm"], reg["velocity"], reg["warped"],
                             config["registration"]["t1_to_template"], device, 1)
            segment_t1.main({"t1w": f["t1w"], "xfm": reg["xfm"], "velocity": reg["velocity"],
                             "regions": tpl["regions"], "brain": tpl["brain"], "tissue_prior": tpl["tissue"]},
                            atlas_out, device, 1)

        peer_s = _timed(atlas_method, dev)
        truth = io.load_nifti(f["regions"], dtype=np.uint8)[0]
        found = io.load_nifti(dseg[0], dtype=np.uint8)[0]
        regions = io.load_nifti(atlas_out["regions"], dtype=np.uint8)[0]
        gm = io.load_nifti(atlas_out["tissue"], dtype=np.uint8)[0] == TISSUE_LABELS["gm"]
        sides = ("hippocampus_L", "hippocampus_R")
        ours_q = np.mean([metrics.dice(found == UNET_LABELS[s], truth == REGIONS[s]) for s in sides])
        peer_q = np.mean([metrics.dice((regions == REGIONS[s]) & gm, truth == REGIONS[s]) for s in sides])
    return [{
        "name": f"segmentation of a 2-mm brain (sub-{label}), one thread",
        "ours_s": ours_s,
        "peer": "atlas method (register_t1 + segment_t1)",
        "peer_s": peer_s,
        "ours_quality": float(ours_q),
        "peer_quality": float(peer_q),
        "quality_name": "hippocampus Dice",
    }]


if __name__ == "__main__":
    for row in rows(sys.argv[1] if len(sys.argv) > 1 else "cpu"):
        print(row, f"speed-up {row['peer_s'] / row['ours_s']:.2f}x")
