"""Rule train_unet: the U-Net on the training cohort. Every epoch sees newly synthesised contrasts of the
training subjects (dlmi.sim.contrast); the last subjects are held out for validation with the study's own
MRI sequence, and, after training, with the held-out contrast family that training never saw."""
import numpy as np
import pandas as pd

from dlmi import figures, io, seeding
from dlmi.device import pick_device, set_threads
from dlmi.labels import UNET_CLASSES, UNET_MIRROR, unet_targets
from dlmi.segment import unet
from dlmi.sim import contrast
from dlmi_workflow import runlog

# The settings a checkpoint records under "training" (besides validation subjects and the MRI sequence):
# the config keys of segmentation.unet that change what is learned. tests/unit/test_unet_checkpoint.py checks
# that the shipped checkpoint recorded the values config/train-unet.yaml gives.
TRAINING_KEYS = ("training_cohort", "epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate",
                 "random_tissue_probability", "mirror")


def validation_subjects(subjects: list[str]) -> list[str]:
    """The training subjects held out for validation: the last sixth, at least one."""
    return subjects[len(subjects) - max(1, len(subjects) // 6):]


def load_subject(inp: dict, k: int, voxel_mm: float):
    """Tissue maps {pd, t1_ms, t2_ms, fractions ((6, X, Y, Z), TISSUES order)} and U-Net target labels of the
    k-th training subject, on one grid."""
    reference = inp["pdmap"][k]
    pd, affine = io.load_nifti(reference)
    if not np.allclose(np.diag(affine)[:3], voxel_mm):
        raise io.InputError(f"{reference}: voxel size {np.diag(affine)[:3]} mm, not anatomy.voxel_mm {voxel_mm}")
    maps = {"pd": pd}
    for key, name, dtype in (("t1_ms", "t1map", np.float32), ("t2_ms", "t2map", np.float32),
                             ("tissue", "tissue", np.uint8), ("regions", "regions", np.uint8)):
        path = inp[name][k]
        maps[key], grid = io.load_nifti(path, dtype=dtype)
        io.check_same_grid(path, maps[key].shape, grid, reference, pd.shape, affine, what="map")
    fractions, grid = io.load_nifti(inp["fractions"][k], ndim=4)
    io.check_same_grid(inp["fractions"][k], fractions.shape[:3], grid, reference, pd.shape, affine, what="map")
    maps["fractions"] = np.moveaxis(fractions, -1, 0)
    return maps, unet_targets(maps.pop("tissue"), maps.pop("regions"))


def augmented(maps: dict, seed: int, subject: str, epoch: int, random_tissue_probability: float) -> np.ndarray:
    """One randomised contrast of a training subject for one epoch, normalised as the network sees it."""
    image, _ = contrast.augmented_image(maps, seeding.rng(seed, subject, f"contrast_epoch{epoch}"),
                                        random_tissue_probability=random_tissue_probability)
    return unet.normalize_intensity(image.numpy())


def fixed_contrast(maps: dict, sequence: dict) -> np.ndarray:
    """A noise-free image of `sequence` (the study's, or a held-out family's), normalised."""
    return unet.normalize_intensity(contrast.synthesize(maps["pd"], maps["t1_ms"], maps["t2_ms"], sequence).numpy())


def main(inp: dict, out: dict, params: dict, device="auto", threads=1, log=None):
    logger = runlog.start(log, "train_unet")
    set_threads(threads)
    dev = pick_device(device)
    settings, subjects, seed = params["unet"], params["subjects"], params["seed"]
    n_validation = len(validation_subjects(subjects))
    if len(subjects) - n_validation < 1:
        raise io.InputError("segmentation.unet.training_cohort.n_subjects: at least 2 subjects are needed "
                            "(one to train on, one to validate)")
    data = [load_subject(inp, k, params["voxel_mm"]) for k in range(len(subjects))]
    training, validation = range(len(subjects) - n_validation), range(len(subjects) - n_validation, len(subjects))
    logger.info("training on %d subjects, validating on %d (%s)", len(training), n_validation,
                ", ".join(subjects[k] for k in validation))
    study_pairs = [(fixed_contrast(data[k][0], params["mri"]), data[k][1]) for k in validation]

    def epoch_images(epoch):
        return [augmented(data[k][0], seed, subjects[k], epoch, settings["random_tissue_probability"])
                for k in training]

    model, history = unet.train(
        epoch_images(1), [data[k][1] for k in training], network_config=unet.NETWORK, epochs=settings["epochs"],
        batch_size=settings["batch_size"], patch_size=settings["patch_size"], lr=settings["learning_rate"],
        steps_per_epoch=settings["steps_per_epoch"],
        seed=seeding.derive_seed(seed, "unet", "train_unet"), device=dev, validation=study_pairs,
        resynthesize=epoch_images, mirror=UNET_MIRROR if settings["mirror"] else None, log=logger)
    held_out = contrast.draw_sequence(seeding.rng(seed, "unet", "held_out_family"), contrast.HELD_OUT_FAMILY)
    held_out_pairs = [(fixed_contrast(data[k][0], held_out), data[k][1]) for k in validation]
    held_out_dice = unet.validation_dice(model, held_out_pairs, patch_size=settings["patch_size"], device=dev)
    logger.info("held-out contrast %s: Dice %s", held_out,
                {UNET_CLASSES[label]: round(value, 3) for label, value in held_out_dice.items()})
    epochs = [{k: v for k, v in record.items() if k != "seconds"} for record in history]  # outputs hold no times
    metadata = {**unet.checked_metadata(params["voxel_mm"]),
                "training": {**{k: settings[k] for k in TRAINING_KEYS},
                             "validation_subjects": [subjects[k] for k in validation], "mri": params["mri"]},
                "code": params["library"], "history": epochs,
                "held_out_family": {"sequence": held_out, "dice": held_out_dice}}
    digest = unet.save_checkpoint(out["checkpoint"], model, metadata)
    io.write_json(out["metadata"], {**metadata, "state_sha256": digest})  # readable without torch (parse time)
    rows = [{"epoch": r["epoch"], "loss": r["loss"],
             **{f"dice_{UNET_CLASSES[label]}": value for label, value in r["dice"].items()}} for r in history]
    io.write_tsv(out["history"], pd.DataFrame(rows))
    figures.training_curves(history, UNET_CLASSES, out["figure"],
                            title=f"U-Net: {len(training)} training subjects, validation with the study's MRI sequence")
    logger.info("checkpoint %s (state sha256 %s)", out["checkpoint"], digest)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main({k: list(v) for k, v in sm.input.items()}, dict(sm.output.items()),
             {**sm.params.settings, "library": sm.params.library}, sm.params.device, sm.threads, sm.log[0])
    runlog.finish(sm)
