"""The shipped U-Net on whole study cohorts of other seeds: issue 9's figures per subject and per cohort.

For each study seed, every subject of the default study's cohort (config/config.yaml, n_subjects) is simulated
and acquired by the workflow's rule scripts and segmented with the shipped checkpoint (bench/unet_subjects.py);
the atlas method is not run here (the study's own quality table, group/segmentation_quality.tsv, has both
methods side by side). Two worker processes, one torch thread each.

    python bench/unet_seeds.py [seed ...]          (default: 1 2 3)

Prints, per seed, the lowest and mean hippocampus Dice, the mean hippocampal volume error (%), the worst
ventricle, WM and CSF volume errors (%), the lowest held-out-family tissue Dice and the lowest flip Dice, and
writes every subject's scores to bench/unet_seeds.tsv.
"""
from __future__ import annotations

import pathlib
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import unet_subjects

from dlmi_workflow.bids import study_subjects

HERE = pathlib.Path(__file__).resolve().parent


def _one(args) -> dict:
    seed, label, folder, template_files = args
    config = unet_subjects.study_config({"cohort": {"seed": seed}})
    files = unet_subjects.subject(pathlib.Path(folder) / label, label, config, template_files, training=False)
    dseg = unet_subjects.segment(pathlib.Path(folder) / label, files["t1w"], config)
    return {"seed": seed, "subject": label, "group": files["group"],
            **unet_subjects.scores(f"{seed}:{label}", files, dseg, config["anatomy"]["voxel_mm"])}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for seed, part in table.groupby("seed"):
        hippocampus = part[["dice_hippocampus_L", "dice_hippocampus_R"]]
        rows.append({
            "seed": seed, "subjects": len(part),
            "hippocampus_dice_min": hippocampus.min().min(), "hippocampus_dice_mean": hippocampus.mean().mean(),
            "hippocampi_volume_error_mean": part.volume_error_hippocampi.mean(),
            **{f"{name}_volume_error_worst": part[f"volume_error_{name}"].abs().max()
               for name in ("hippocampi", "ventricles", "wm", "csf")},
            "held_out_tissue_dice_min": part.held_out_tissue_dice.min(),
            "flip_dice_min": part.flip_dice.min(),
        })
    return pd.DataFrame(rows)


def main(seeds: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        template_files = unet_subjects.template(pathlib.Path(tmp), unet_subjects.study_config())
        jobs = [(seed, label, tmp, template_files) for seed in seeds
                for label in study_subjects(unet_subjects.study_config({"cohort": {"seed": seed}}))]
        with ProcessPoolExecutor(2) as pool:
            table = pd.DataFrame(list(pool.map(_one, jobs)))
    table.to_csv(HERE / "unet_seeds.tsv", sep="\t", index=False, float_format="%.4f")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(summary(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [1, 2, 3])
