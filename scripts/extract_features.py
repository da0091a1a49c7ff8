"""Rule extract_features: one subject's regional volumes (mL) and SUVR from reconstructed images only."""
import numpy as np
import pandas as pd

from dlmi import io
from dlmi.analysis import features
from dlmi.labels import BRAIN_CLASSES, REFERENCE_REGION, REGIONS, UNET_LABELS
from dlmi_workflow import runlog


def main(csf, gm, wm, regions, pet_in_t1, tsv, subject, unet_probseg=None, log=None):
    """Volumes from the atlas method's tissue posteriors and regions, or, given `unet_probseg`
    (segmentation.method: unet), from the U-Net's class probabilities; SUVR from the atlas regions, given
    `pet_in_t1` (None: a study without PET, no SUVR columns)."""
    logger = runlog.start(log, "extract_features")
    posteriors, grids = {}, {}
    for name, path in zip(BRAIN_CLASSES, (csf, gm, wm)):
        posteriors[name], grids[name] = io.load_nifti(path)
    affine = grids[BRAIN_CLASSES[0]]
    reference = (csf, posteriors[BRAIN_CLASSES[0]].shape, affine)  # every map must lie on the T1w grid
    for name, path in zip(BRAIN_CLASSES[1:], (gm, wm)):
        io.check_same_grid(path, posteriors[name].shape, grids[name], *reference, what="tissue map")
    labels, labels_affine = io.load_nifti(regions, dtype=np.int32)
    io.check_same_grid(regions, labels.shape, labels_affine, *reference)
    io.check_nonempty(regions, labels, what="label map")
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    row = {"participant_id": f"sub-{subject}"}
    if unet_probseg is None:
        row.update(features.regional_volumes(posteriors, labels, REGIONS, voxel_ml))
        row["icv_ml"] = features.intracranial_volume(np.stack(list(posteriors.values())), voxel_ml)
    else:
        probabilities, unet_affine = io.load_nifti(unet_probseg, ndim=4)
        io.check_same_grid(unet_probseg, probabilities.shape[:3], unet_affine, *reference, what="probability map")
        if probabilities.shape[3] != len(UNET_LABELS):
            raise io.InputError(f"{unet_probseg}: {probabilities.shape[3]} class probabilities, expected "
                                f"{len(UNET_LABELS)} (resources/unet_dseg.tsv)")
        row.update(features.unet_volumes(np.moveaxis(probabilities, -1, 0), UNET_LABELS, voxel_ml))
    if pet_in_t1 is not None:
        pet, pet_affine = io.load_nifti(pet_in_t1)
        io.check_same_grid(pet_in_t1, pet.shape, pet_affine, *reference, what="PET image")
        targets = {name: REGIONS[name] for name in features.SUVR_TARGETS}
        try:
            ratios = features.suvr(pet, labels, targets, REGIONS[REFERENCE_REGION], posteriors["gm"])
        except io.InputError as err:  # an empty region or no reference uptake: name the files
            raise io.InputError(f"{pet_in_t1}: SUVR in the regions of {regions}, weighted by {gm}: {err}") from None
        row.update({f"suvr_{name}": value for name, value in ratios.items()})
    io.write_tsv(tsv, pd.DataFrame([row]))
    logger.info("features: %s", row)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    i = sm.input
    with runlog.stop_on_input_error():
        main(i.csf, i.gm, i.wm, i.regions, i.get("pet_in_t1"), sm.output.tsv, sm.wildcards.subject, i.get("unet"),
             sm.log[0])
    runlog.finish(sm)
