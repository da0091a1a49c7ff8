"""Rule simulate_anatomy: one subject's ground truth (MRI session maps and labels; PET/CT session maps)."""
import numpy as np

from dlmi import io, seeding
from dlmi.sim import anatomy, cohort
from dlmi_workflow import runlog


def main(inp: dict, out: dict, subject: str, cohort_params: dict, effects: dict | None, pet: dict, voxel_mm,
         log=None):
    """effects: the config's anatomy.effects for an AD subject, None for a CN subject (see common.smk)."""
    logger = runlog.start(log, "simulate_anatomy")
    study = cohort.from_config(cohort_params, effects)
    participant = cohort.draw_participant(study.seed, subject, study)
    template = anatomy.load_template(inp["fractions"], inp["tissue"], inp["regions"], inp["brain"], voxel_mm)
    truth = anatomy.simulate_subject(template, participant, study.effects, rng=seeding.rng(study.seed, subject, "anatomy"),
                                     age_effects=study.age_effects)
    motion = anatomy.pet_session_motion(seeding.rng(study.seed, subject, "pet_motion"), pet["motion_rotation_deg"],
                                        pet["motion_translation_mm"])
    session = anatomy.pet_session_truth(truth, motion)
    affine = truth["affine"]
    for key, name in (("t1_ms", "t1map"), ("t2_ms", "t2map"), ("pd", "pdmap")):
        io.save_nifti(out[name], truth[key], affine)
    io.save_nifti(out["tissue"], truth["tissue"], affine, dtype=np.uint8)
    io.save_nifti(out["regions"], truth["regions"], affine, dtype=np.uint8)
    io.save_nifti(out["ct"], session["ct_hu"], affine)
    io.save_nifti(out["fdg"], session["fdg"], affine)
    io.write_json(out["motion"], {"matrix": motion.tolist(), "convention": "x_pet = matrix @ x_T1w (RAS+, mm)"})
    io.write_json(out["sidecar"], {
        "participant": participant,
        "applied_effects": truth["applied"],
        "from_template_to_T1w_affine": truth["transform"].tolist(),
        "volumes_ml": truth["volumes_ml"],
    })
    logger.info("sub-%s %s age %.1f: %s", subject, participant["group"], participant["age"], truth["applied"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.wildcards.subject, sm.params.cohort,
             sm.params.effects, sm.params.pet, sm.params.voxel_mm, sm.log[0])
    runlog.finish(sm)
