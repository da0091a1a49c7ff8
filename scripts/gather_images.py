"""Rule gather_images: one image of every group subject (the T1w, or a tissue fraction map) in template space
through its affine registration, on the model grid (dlmi.analysis.images: model.image_voxel_mm, cropped to
the template's brain), stacked into one .npz for the image models. A T1w is divided by its median brain
intensity; a fraction map keeps its values."""
import numpy as np

from dlmi import io
from dlmi.analysis import images
from dlmi.register import itk
from dlmi_workflow import runlog


def main(image_paths, xfm_paths, brain_path, images_npz, subjects: list[str], voxel_mm: float, image: str,
         log=None):
    logger = runlog.start(log, "gather_images")
    brain, brain_affine = io.load_nifti(brain_path)
    io.check_nonempty(brain_path, brain > 0.5, "brain mask")
    shape, affine = images.model_grid(brain, brain_affine, voxel_mm)
    mask = images.mask_on_grid(brain, brain_affine, shape, affine)
    stack = np.empty((len(subjects), *shape), np.float32)
    for k, (path, xfm_path) in enumerate(zip(image_paths, xfm_paths, strict=True)):
        data, data_affine = io.load_nifti(path)
        stack[k] = images.to_model_grid(data, data_affine, itk.read_transform(xfm_path), shape, affine)
        if image == "T1w":
            try:
                stack[k] = images.normalise_intensity(stack[k], mask)
            except ValueError as err:
                raise io.InputError(f"{path}: {err} after the affine registration ({xfm_path})") from None
    io.save_npz(images_npz, {"image": image, "voxel_mm": voxel_mm, "affine": affine.tolist()}, images=stack,
                participant_id=np.array(subjects), affine=affine)
    logger.info("%d %s images of %s voxels at %g mm (brain %d voxels)", len(subjects), image, shape, voxel_mm,
                int(mask.sum()))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821  (injected by Snakemake)
    with runlog.stop_on_input_error():
        main(list(sm.input.images), list(sm.input.xfm), sm.input.brain, sm.output.images, sm.params.subjects,
             sm.params.voxel_mm, sm.wildcards.image, sm.log[0])
    runlog.finish(sm)
