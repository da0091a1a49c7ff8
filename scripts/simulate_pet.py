"""Rule simulate_pet: FDG-PET sinograms on the PET grid with attenuation and Poisson counts."""
import numpy as np
import torch

from dlmi import io, seeding
from dlmi.device import pick_device, set_threads
from dlmi.recon import ct, pet
from dlmi_workflow import runlog


def main(inp, out, subject, seed, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "simulate_pet")
    set_threads(threads)
    dev = pick_device(device)
    fdg, affine = io.load_nifti(inp["fdg"])
    hu = io.load_nifti(inp["ct"])[0]
    factor = round(params["voxel_mm"] / abs(affine[0, 0]))
    activity = pet.downsample(torch.from_numpy(fdg).to(dev), factor)
    mu511 = pet.downsample(ct.hu_to_mu511(torch.from_numpy(hu).to(dev)), factor)
    pet_affine = pet.downsampled_affine(affine, factor)
    angles = np.linspace(0.0, np.pi, params["n_angles"], endpoint=False)
    slices = activity.permute(2, 0, 1)  # axial slices (Z, X, Y)
    attenuation = pet.attenuation_factors(mu511.permute(2, 0, 1), angles, pixel_mm=params["voxel_mm"])
    expected = pet.forward(slices, angles, attenuation, pixel_mm=params["voxel_mm"])
    scale = params["total_counts"] / float(expected.sum())
    generator = torch.Generator(dev).manual_seed(seeding.derive_seed(seed, subject, "simulate_pet"))
    counts = pet.simulate_counts(expected * scale, generator)
    acquisition = {"angles_rad": angles.tolist(), "pixel_mm": params["voxel_mm"], "shape": list(activity.shape),
                   "affine": pet_affine.tolist(), "scale": scale, "total_counts": float(counts.sum()),
                   "geometry": "2-D parallel-beam LORs per axial slice, no randoms or scatter"}
    io.save_npz(out["sinogram"], acquisition, counts=counts.cpu().numpy().astype(np.float32))
    io.save_nifti(out["truth"], activity.cpu().numpy(), pet_affine)
    logger.info("PET %s on %.1f mm grid, %.3g counts", tuple(activity.shape), params["voxel_mm"], float(counts.sum()))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(dict(sm.input.items()), dict(sm.output.items()), sm.wildcards.subject, sm.params.seed, sm.params.pet,
             sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
