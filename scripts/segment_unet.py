"""Rule segment_unet: one subject's reconstructed T1w segmented by the U-Net (sliding-window inference):
class probabilities (4-D, one volume per class of resources/unet_dseg.tsv) and the label map."""
import numpy as np

from dlmi import io
from dlmi.device import pick_device, set_threads
from dlmi.labels import UNET_CLASSES
from dlmi.segment import unet
from dlmi_workflow import runlog


def main(t1w_path, checkpoint_path, out: dict, params: dict, device="auto", threads=1, log=None):
    logger = runlog.start(log, "segment_unet")
    set_threads(threads)
    dev = pick_device(device)
    image, affine = io.load_nifti(t1w_path)
    model, metadata = unet.load_checkpoint(checkpoint_path, unet.checked_metadata(params["voxel_mm"]))
    patch = metadata["training"]["patch_size"]  # the window the network was trained on
    probabilities, labels = unet.infer(model.to(dev), unet.normalize_intensity(image), patch_size=patch, device=dev)
    io.save_nifti(out["probseg"], np.moveaxis(probabilities, 0, -1), affine)
    io.save_nifti(out["dseg"], labels, affine, dtype=np.uint8)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    volumes = {name: round(float((labels == k).sum() * voxel_ml), 2) for k, name in enumerate(UNET_CLASSES) if k}
    logger.info("checkpoint %s (state sha256 %s): volumes (mL) %s", checkpoint_path, metadata["state_sha256"][:12],
                volumes)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.t1w, sm.input.checkpoint, dict(sm.output.items()), sm.params.settings, sm.params.device,
             sm.threads, sm.log[0])
    runlog.finish(sm)
