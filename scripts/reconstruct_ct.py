"""Rule reconstruct_ct: filtered back-projection of every axial slice, in Hounsfield units."""
import numpy as np
import torch

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.recon import ct
from dlmi_workflow import runlog

PARAMS = ("angles_rad", "pixel_mm", "shape", "affine", "mu_water_per_mm")


def main(sinogram_path, ct_path, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "reconstruct_ct")
    set_threads(threads)
    dev = pick_device(device)
    data, acq = io.load_npz(sinogram_path, arrays=("sinogram",), params=PARAMS)
    sinogram = torch.from_numpy(data["sinogram"]).to(dev)
    shape = acq["shape"]
    mu = ct.fbp(sinogram, acq["angles_rad"], (shape[0], shape[1]), pixel_mm=acq["pixel_mm"],
                filter_name=params["filter"])
    hu = ct.mu_to_hu(mu.permute(1, 2, 0), acq["mu_water_per_mm"])
    io.save_nifti(ct_path, hu.cpu().numpy(), np.array(acq["affine"]))
    logger.info("FBP (%s filter) of %d slices", params["filter"], sinogram.shape[0])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.sinogram, sm.output.ct, sm.params.ct, sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
