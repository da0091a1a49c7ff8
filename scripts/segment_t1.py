"""Rule segment_t1: tissue posteriors of the subject's T1 and atlas regions in subject space."""
import numpy as np
import torch

from dlmi import io, registration, runlog, segmentation
from dlmi.device import pick_device, set_threads
from dlmi.phantom import REGIONS

# Enlarged ventricles reach past the template's outline, into white matter and the deep grey nuclei around
# them: ventricular CSF is measured inside the ventricle labels grown by this much into those regions.
VENTRICLE_SEARCH_MM = 8.0


def main(inp, out, device="auto", threads=1, log=None):
    logger = runlog.start(log, "segment_t1")
    set_threads(threads)
    dev = pick_device(device)
    t1w, affine = io.load_nifti(inp["t1w"])
    to_template = registration.invert(registration.read_transform(inp["xfm"]))  # subject -> template points
    regions, tpl_affine = io.load_nifti(inp["regions"], dtype=np.uint8)
    brain = io.load_nifti(inp["brain"])[0]
    regions = registration.resample(regions, tpl_affine, t1w.shape, affine, to_template, order=0)
    radius = max(1, round(VENTRICLE_SEARCH_MM / abs(affine[0, 0])))
    ventricles = (REGIONS["ventricle_L"], REGIONS["ventricle_R"])
    regions = segmentation.grow_labels(torch.from_numpy(regions), ventricles, radius,
                                       into=(REGIONS["none"], REGIONS["deep_gm"])).numpy()
    mask = registration.resample(brain, tpl_affine, t1w.shape, affine, to_template) > 0.5
    posteriors = segmentation.tissue_posteriors(torch.from_numpy(t1w).to(dev), torch.from_numpy(mask).to(dev))
    labels = segmentation.hard_labels(posteriors, torch.from_numpy(mask).to(dev))
    for k, name in enumerate(segmentation.CLASSES):
        io.save_nifti(out[name], posteriors[k].cpu().numpy(), affine)
    io.save_nifti(out["tissue"], labels.cpu().numpy(), affine, dtype=np.uint8)
    io.save_nifti(out["regions"], regions, affine, dtype=np.uint8)
    logger.info("brain mask %d voxels; class fractions %s", int(mask.sum()),
                np.round(posteriors.sum((1, 2, 3)).cpu().numpy() / mask.sum(), 3))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(dict(sm.input.items()), dict(sm.output.items()), sm.config["device"], sm.threads, sm.log[0])
