"""Rule reconstruct_pet: OSEM with attenuation correction from the reconstructed CT."""
import numpy as np
import torch

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.recon import ct, pet
from dlmi_workflow import runlog

PARAMS = ("angles_rad", "pixel_mm", "shape", "affine", "scale")


def main(sinogram_path, ct_path, pet_path, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "reconstruct_pet")
    set_threads(threads)
    dev = pick_device(device)
    data, acq = io.load_npz(sinogram_path, arrays=("counts",), params=PARAMS)
    counts = torch.from_numpy(data["counts"]).to(dev)
    hu, ct_affine = io.load_nifti(ct_path)
    factor = round(acq["pixel_mm"] / abs(ct_affine[0, 0]))
    mu511 = pet.downsample(ct.hu_to_mu511(torch.from_numpy(hu).to(dev)), factor).permute(2, 0, 1)
    attenuation = pet.attenuation_factors(mu511, acq["angles_rad"], pixel_mm=acq["pixel_mm"],
                                          n_det=counts.shape[-1])
    shape = acq["shape"]
    image = pet.mlem(counts, acq["angles_rad"], attenuation, (shape[0], shape[1]), pixel_mm=acq["pixel_mm"],
                     n_iter=params["iterations"], n_subsets=params["subsets"], scale=acq["scale"],
                     callback=lambda k, _: logger.info("OSEM iteration %d/%d", k, params["iterations"]))
    io.save_nifti(pet_path, image.permute(1, 2, 0).cpu().numpy(), np.array(acq["affine"]))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.sinogram, sm.input.ct, sm.output.pet, sm.params.pet, sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
