"""Rule simulate_ct: parallel-beam CT sinogram of every axial slice, with Poisson transmission noise."""
import numpy as np
import torch

from dlmi import io, seeding
from dlmi.device import pick_device, set_threads
from dlmi.recon import ct, projector
from dlmi_workflow import runlog


def main(ct_path, sinogram_path, subject, seed, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "simulate_ct")
    set_threads(threads)
    dev = pick_device(device)
    hu, affine = io.load_nifti(ct_path)
    pixel_mm = float(abs(affine[0, 0]))
    mu = ct.hu_to_mu(torch.from_numpy(hu).to(dev)).permute(2, 0, 1)  # axial slices (Z, X, Y)
    angles = np.linspace(0.0, np.pi, params["n_angles"], endpoint=False)
    line_integrals = projector.forward_project(mu, angles, pixel_mm=pixel_mm)
    generator = torch.Generator(dev).manual_seed(seeding.derive_seed(seed, subject, "simulate_ct"))
    noisy = ct.simulate_transmission(line_integrals, params["photons_per_ray"], generator)
    acquisition = {"angles_rad": angles.tolist(), "pixel_mm": pixel_mm, "shape": list(hu.shape),
                   "affine": affine.tolist(), "photons_per_ray": params["photons_per_ray"],
                   "mu_water_per_mm": ct.MU_WATER, "geometry": "parallel beam, axial slices along z"}
    io.save_npz(sinogram_path, acquisition, sinogram=noisy.cpu().numpy().astype(np.float32))
    logger.info("sinogram %s (slices, angles, bins)", tuple(noisy.shape))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.ct, sm.output.sinogram, sm.wildcards.subject, sm.params.seed, sm.params.ct, sm.config["device"],
             sm.threads, sm.log[0])
    runlog.finish(sm)
