"""Rule register_t1: affine registration (multi-resolution NCC) of the subject's T1 to the template."""
from dlmi import io, registration, runlog
from dlmi.device import pick_device, set_threads


def main(t1w_path, template_path, xfm_path, warped_path, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "register_t1")
    set_threads(threads)
    t1w, t1_affine = io.load_nifti(t1w_path)
    template, tpl_affine = io.load_nifti(template_path)
    transform = registration.affine_register(template, t1w, tpl_affine, t1_affine, metric="ncc",
                                             levels=params["levels"], iterations=params["iterations"],
                                             device=pick_device(device))
    registration.write_transform(xfm_path, transform)
    io.save_nifti(warped_path, registration.resample(t1w, t1_affine, template.shape, tpl_affine, transform),
                  tpl_affine)
    logger.info("template -> T1w world transform:\n%s", transform)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(sm.input.t1w, sm.input.template, sm.output.xfm, sm.output.warped, sm.params.registration,
         sm.config["device"], sm.threads, sm.log[0])
