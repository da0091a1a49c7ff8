"""Rule segment_t1: partial-volume tissue fractions of the subject's T1 and atlas regions in subject space."""
import numpy as np
import torch

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.labels import BRAIN_CLASSES, REGIONS
from dlmi.register import itk, svf
from dlmi.segment import atlas
from dlmi_workflow import runlog

# Enlarged ventricles reach past the template's outline, into white matter and the deep grey nuclei around
# them: ventricular CSF is measured inside the ventricle labels grown by this much into those regions.
VENTRICLE_SEARCH_MM = 8.0


def main(inp, out, device="auto", threads=1, log=None):
    logger = runlog.start(log, "segment_t1")
    set_threads(threads)
    dev = pick_device(device)
    t1w, affine = io.load_nifti(inp["t1w"])
    transform = itk.read_transform(inp["xfm"])  # template -> subject points (affine part)
    velocity = svf.load_velocity(inp["velocity"])[0]
    brain, tpl_affine = io.load_nifti(inp["brain"])
    io.check_nonempty(inp["brain"], brain)
    template = (inp["brain"], brain.shape, tpl_affine)  # the template's labels lie on its mask's grid
    regions, regions_affine = io.load_nifti(inp["regions"], dtype=np.uint8)
    io.check_same_grid(inp["regions"], regions.shape, regions_affine, *template)
    prior, prior_affine = io.load_nifti(inp["tissue_prior"], dtype=np.uint8)
    io.check_same_grid(inp["tissue_prior"], prior.shape, prior_affine, *template)
    regions = svf.propagate_to_moving(regions, tpl_affine, t1w.shape, affine, transform, velocity, order=0)
    prior = svf.propagate_to_moving(prior, tpl_affine, t1w.shape, affine, transform, velocity, order=0)
    radius = max(1, round(VENTRICLE_SEARCH_MM / abs(affine[0, 0])))
    ventricles = (REGIONS["ventricle_L"], REGIONS["ventricle_R"])
    regions = atlas.grow_labels(torch.from_numpy(regions), ventricles, radius,
                                       into=(REGIONS["none"], REGIONS["deep_gm"])).numpy()
    mask = svf.propagate_to_moving(brain, tpl_affine, t1w.shape, affine, transform, velocity, order=1) > 0.5
    if not mask.any():
        raise io.InputError(f"{inp['xfm']}: the template brain mask maps to no voxel of {inp['t1w']} "
                            "(empty mask after propagation)")
    image, mask_t = torch.from_numpy(t1w).to(dev), torch.from_numpy(mask).to(dev)
    try:
        means = atlas.class_means(image, torch.from_numpy(prior).to(dev), mask_t)
    except io.InputError as err:  # a class of the prior is absent
        raise io.InputError(f"{inp['tissue_prior']}: {err} of {inp['t1w']}") from None
    try:
        posteriors = atlas.partial_volume_fractions(image, mask_t, means)
    except io.InputError as err:  # not a T1-weighted contrast
        raise io.InputError(f"{inp['t1w']}: {err}") from None
    labels = atlas.hard_labels(posteriors, mask_t)
    for k, name in enumerate(BRAIN_CLASSES):
        io.save_nifti(out[name], posteriors[k].cpu().numpy(), affine)
    io.save_nifti(out["tissue"], labels.cpu().numpy(), affine, dtype=np.uint8)
    io.save_nifti(out["regions"], regions, affine, dtype=np.uint8)
    logger.info("tissue means (CSF, GM, WM) %s", means.cpu().numpy())
    logger.info("brain mask %d voxels; class fractions %s", int(mask.sum()),
                np.round(posteriors.sum((1, 2, 3)).cpu().numpy() / mask.sum(), 3))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
