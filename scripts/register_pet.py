"""Rule register_pet: rigid registration (mutual information) of the PET to the subject's T1."""
from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.register import itk, linear
from dlmi.spatial import resampling
from dlmi_workflow import runlog


def main(pet_path, t1w_path, xfm_path, pet_in_t1_path, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "register_pet")
    set_threads(threads)
    pet, pet_affine = io.load_nifti(pet_path)
    t1w, t1_affine = io.load_nifti(t1w_path)
    transform = linear.rigid_register(t1w, pet, t1_affine, pet_affine, metric="mi", bins=params["bins"],
                                            levels=params["levels"], iterations=params["iterations"],
                                            device=pick_device(device))
    itk.write_transform(xfm_path, transform)
    io.save_nifti(pet_in_t1_path, resampling.resample(pet, pet_affine, t1w.shape, t1_affine, transform),
                  t1_affine)
    logger.info("T1w -> PET world transform:\n%s", transform)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.pet, sm.input.t1w, sm.output.xfm, sm.output.pet_in_t1, sm.params.registration,
             sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
