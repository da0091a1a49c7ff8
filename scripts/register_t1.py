"""Rule register_t1: the subject's T1 to the template, affine then diffeomorphic (multi-resolution NCC)."""
import json
from pathlib import Path

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.register import itk, linear, svf
from dlmi_workflow import runlog


def main(t1w_path, template_path, xfm_path, velocity_path, warped_path, params, device="auto", threads=1, log=None,
         sidecar=None, brain=None):
    """sidecar: the T1w's BIDS sidecar (a BIDS study); when it says SkullStripped, the T1w is registered to
    the template masked by its brain mask `brain`, not to the whole head."""
    logger = runlog.start(log, "register_t1")
    set_threads(threads)
    t1w, t1_affine = io.load_nifti(t1w_path)
    template, tpl_affine = io.load_nifti(template_path)
    if sidecar is not None and json.loads(Path(sidecar).read_text()).get("SkullStripped"):
        mask, mask_affine = io.load_nifti(brain)
        io.check_same_grid(brain, mask.shape, mask_affine, template_path, template.shape, tpl_affine, what="brain mask")
        template = template * (mask > 0.5)
        logger.info("skull-stripped T1w (%s): registered to the template's brain", sidecar)
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
             sm.config["device"], sm.threads, sm.log[0], sm.input.get("sidecar"), sm.input.get("brain"))
    runlog.finish(sm)
