"""Rule qc_figure: the mid-slice mosaic of one stage (one row per subject) for the report."""
from dlmi import figures, io
from dlmi.spatial.resampling import resample
from dlmi_workflow import runlog

OVERLAY_KIND = {"warped_t1": "contour", "pet_in_t1": "heat", "segmentation": "labels", "unet_segmentation": "labels"}
WINDOW = {"recon_ct": (-20.0, 100.0)}  # CT brain window (HU)


def main(stage, subjects, images, overlays, png, log=None):
    """subjects: the labels of the rows, in the order of `images` (one per subject)."""
    logger = runlog.start(log, "qc_figure")
    rows = []
    for k, path in enumerate(images):
        image, affine = io.load_nifti(path)
        overlay = None
        if overlays:
            overlay, overlay_affine = io.load_nifti(overlays[k if len(overlays) > 1 else 0])
            if overlay.shape != image.shape:  # e.g. a PET grid: show it on the image grid
                overlay = resample(overlay, overlay_affine, image.shape, affine)
        rows.append((f"sub-{subjects[k]}", image, overlay))
    figures.mosaic(rows, png, overlay_kind=OVERLAY_KIND.get(stage), title=stage.replace("_", " "),
                   window=WINDOW.get(stage))
    logger.info("%s: %d subjects", png, len(rows))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.wildcards.stage, list(sm.params.subjects), list(sm.input.images), list(sm.input.get("overlays", [])),
             sm.output.png, sm.log[0])
    runlog.finish(sm)
