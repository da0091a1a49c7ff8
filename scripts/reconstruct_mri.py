"""Rule reconstruct_mri: coil-combined magnitude image from multi-coil k-space (known coil maps)."""
import numpy as np
import torch

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.recon import mri
from dlmi_workflow import runlog

PARAMS = ("n_coils", "voxel_mm", "shape", "affine")


def main(kspace_path, t1w_path, device="auto", threads=1, log=None):
    logger = runlog.start(log, "reconstruct_mri")
    set_threads(threads)
    dev = pick_device(device)
    data, acq = io.load_npz(kspace_path, arrays=("kspace",), params=PARAMS)
    kspace = torch.from_numpy(data["kspace"]).to(dev)
    sens = mri.coil_sensitivities(tuple(acq["shape"]), acq["n_coils"], voxel_mm=acq["voxel_mm"], device=dev,
                                  dtype=kspace.dtype)
    image = mri.reconstruct_kspace(kspace, sens)
    io.save_nifti(t1w_path, image.cpu().numpy(), np.array(acq["affine"]))
    logger.info("reconstructed %s from %d coils", tuple(image.shape), acq["n_coils"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.kspace, sm.output.t1w, sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
