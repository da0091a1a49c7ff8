"""Rule simulate_mri: multi-coil k-space of a T1-weighted spin echo, with complex Gaussian noise."""
import numpy as np
import torch

from dlmi import io, seeding
from dlmi.device import pick_device, set_threads
from dlmi.recon import mri
from dlmi_workflow import runlog


def main(inp, out, subject, seed, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "simulate_mri")
    set_threads(threads)
    dev = pick_device(device)
    maps = {}
    for name in ("pdmap", "t1map", "t2map"):
        data, affine = io.load_nifti(inp[name])
        maps[name] = torch.from_numpy(data).to(dev)
    image = mri.sequence_signal(maps["pdmap"], maps["t1map"], maps["t2map"], params)
    voxel_mm = np.abs(np.diag(affine)[:3]).tolist()
    sens = mri.coil_sensitivities(tuple(image.shape), params["n_coils"], voxel_mm=voxel_mm, device=dev)
    generator = torch.Generator(dev).manual_seed(seeding.derive_seed(seed, subject, "simulate_mri"))
    kspace = mri.simulate_kspace(image, sens, noise_sd=params["noise_sd"], generator=generator)
    acquisition = {"n_coils": params["n_coils"], "voxel_mm": voxel_mm, "shape": list(image.shape),
                   "affine": affine.tolist(), **params, "fft": "centred orthonormal 3-D"}
    io.save_npz(out["kspace"], acquisition, compress=False, kspace=kspace.cpu().numpy())
    io.save_nifti(out["truth"], image.cpu().numpy(), affine)
    logger.info("k-space %s, %d coils, noise SD %g", tuple(kspace.shape), params["n_coils"], params["noise_sd"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.wildcards.subject, sm.params.seed, sm.params.mri,
             sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
