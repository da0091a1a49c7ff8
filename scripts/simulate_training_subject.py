"""Rule simulate_training_subject: one subject of the U-Net's training cohort: its tissue maps (T1, T2, PD),
partial-volume tissue fractions (4-D, one volume per class of resources/tissue_dseg.tsv) and true labels, drawn like a study subject but from the training cohort's own seed and label."""
import numpy as np

from dlmi import io, seeding
from dlmi.sim import anatomy, cohort
from dlmi_workflow import runlog


def main(inp: dict, out: dict, subject: str, cohort_params: dict, effects: dict | None, voxel_mm, log=None):
    """cohort_params: {seed (the training cohort's), ad_fraction, age_range}; effects: the config's
    anatomy.effects for an AD training subject, None for a CN one (see common.smk), as in the study."""
    logger = runlog.start(log, "simulate_training_subject")
    design = cohort.from_config(cohort_params, effects)
    participant = cohort.draw_participant(design.seed, subject, design)
    template = anatomy.load_template(inp["fractions"], inp["tissue"], inp["regions"], inp["brain"], voxel_mm)
    truth = anatomy.simulate_subject(template, participant, design.effects,
                                     rng=seeding.rng(design.seed, subject, "anatomy"), age_effects=design.age_effects)
    for key, name in (("t1_ms", "t1map"), ("t2_ms", "t2map"), ("pd", "pdmap")):
        io.save_nifti(out[name], truth[key], truth["affine"])
    io.save_nifti(out["fractions"], np.moveaxis(truth["fractions"], 0, -1), truth["affine"])
    io.save_nifti(out["tissue"], truth["tissue"], truth["affine"], dtype=np.uint8)
    io.save_nifti(out["regions"], truth["regions"], truth["affine"], dtype=np.uint8)
    io.write_json(out["sidecar"], {"participant": participant, "applied_effects": truth["applied"],
                                   "volumes_ml": truth["volumes_ml"]})
    logger.info("sub-%s %s age %.1f: %s", subject, participant["group"], participant["age"], truth["applied"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.wildcards.subject, sm.params.cohort,
             sm.params.effects, sm.params.voxel_mm, sm.log[0])
    runlog.finish(sm)
