"""Rule register_t1: the subject's T1 to the template, affine then diffeomorphic (multi-resolution NCC)."""
from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.register import itk, linear, svf
from dlmi_workflow import runlog


def main(t1w_path, template_path, xfm_path, velocity_path, warped_path, params, device="auto", threads=1, log=None):
    logger = runlog.start(log, "register_t1")
    set_threads(threads)
    t1w, t1_affine = io.load_nifti(t1w_path)
    template, tpl_affine = io.load_nifti(template_path)
    dev = pick_device(device)
    transform = linear.affine_register(template, t1w, tpl_affine, t1_affine, metric="ncc",
                                             levels=params["levels"], iterations=params["iterations"], device=dev)
    itk.write_transform(xfm_path, transform)
    logger.info("template -> T1w affine world transform:\n%s", transform)
    nonlinear = params["nonlinear"]
    velocity = svf.svf_register(template, t1w, tpl_affine, t1_affine, transform, levels=nonlinear["levels"],
                                       iterations=nonlinear["iterations"],
                                       regularization=nonlinear["regularization"], device=dev)
    svf.save_velocity(velocity_path, velocity, tpl_affine)
    warped = svf.warp_to_fixed(t1w, t1_affine, template.shape, tpl_affine, transform, velocity)
    io.save_nifti(warped_path, warped, tpl_affine)
    logger.info("velocity field: max |v| %.2f mm", float(velocity.norm(dim=0).max()))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.t1w, sm.input.template, sm.output.xfm, sm.output.velocity, sm.output.warped, sm.params.registration,
             sm.config["device"], sm.threads, sm.log[0])
    runlog.finish(sm)
