"""Rule build_template: the MNI152/AAL head template on the study grid, and its T1-weighted image."""
import numpy as np
import torch

from dlmi import io
from dlmi.recon import mri
from dlmi.sim import anatomy
from dlmi_workflow import runlog


def main(out: dict, voxel_mm: float, mri_params: dict, log=None):
    logger = runlog.start(log, "build_template")
    template = anatomy.build_template(voxel_mm)
    maps = {k: torch.from_numpy(v) for k, v in anatomy.property_maps(template.fractions).items()}
    t1w = mri.sequence_signal(maps["pd"], maps["t1_ms"], maps["t2_ms"], mri_params)
    io.save_nifti(out["t1w"], t1w.numpy(), template.affine)
    io.save_nifti(out["fractions"], np.moveaxis(template.fractions, 0, -1), template.affine)
    io.save_nifti(out["tissue"], template.tissue, template.affine, dtype=np.uint8)
    io.save_nifti(out["regions"], template.regions, template.affine, dtype=np.uint8)
    io.save_nifti(out["brain"], template.brain_mask, template.affine, dtype=np.uint8)
    logger.info("template %s at %.1f mm", template.shape, voxel_mm)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.output.items()), sm.params.voxel_mm, sm.params.mri, sm.log[0])
    runlog.finish(sm)
