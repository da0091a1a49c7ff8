"""Rule conform_t1w: a BIDS subject's T1w onto the study's grid: N4 bias correction (input.n4), then an
axis-aligned RAS+ grid of anatomy.voxel_mm voxels (resampled when the scan is oblique or of another voxel
size), with a BIDS sidecar that names its source and what was done to it."""
import os

from dlmi import io
from dlmi.recon.n4 import n4_correct
from dlmi.spatial.conform import conform, looks_skull_stripped
from dlmi_workflow import runlog


def main(source, t1w_path, sidecar_path, voxel_mm, n4, skull_stripped, dataset_root, log=None):
    """skull_stripped: "yes", "no" or "auto" (config input.skull_stripped; auto: `looks_skull_stripped`)."""
    logger = runlog.start(log, "conform_t1w")
    data, affine = io.load_nifti_as_stored(source)
    if data.ndim == 4:
        data = data[..., 0]
        logger.info("%s: singleton 4th axis dropped", source)
    stripped = looks_skull_stripped(data) if skull_stripped == "auto" else skull_stripped == "yes"
    logger.info("skull-stripped: %s (input.skull_stripped: %s)", stripped, skull_stripped)
    if n4:
        try:
            data, field = n4_correct(data, affine)
        except ValueError as err:
            raise io.InputError(f"{source}: N4 bias correction (input.n4): {err}") from None
        logger.info("N4 bias field: %.3f to %.3f", float(field.min()), float(field.max()))
    try:
        t1w, t1w_affine, record = conform(data, affine, voxel_mm)
    except ValueError as err:  # a sheared or singular affine
        raise io.InputError(f"{source}: {err}") from None
    action = "resampled" if record["resampled"] else "reoriented without resampling"
    logger.info("%s: %s %s, %.2f degrees oblique, voxels %s mm -> RAS %s at %.1f mm (%s)", source,
                record["axis_codes"], record["shape"], record["obliquity_degrees"],
                ", ".join(f"{v:.2f}" for v in record["voxel_mm"]), list(t1w.shape), voxel_mm, action)
    io.save_nifti(t1w_path, t1w, t1w_affine)
    io.write_json(sidecar_path, {
        "Sources": [f"bids:raw:{os.path.relpath(source, dataset_root)}"],
        "SkullStripped": stripped,
        "BiasFieldCorrection": "N4 (SimpleITK, dlmi.recon.n4)" if n4 else "none",
        "Resampled": record["resampled"],
        "Interpolation": "trilinear" if record["resampled"] else "none",
        "SourceAxisCodes": record["axis_codes"],
        "SourceObliquityDegrees": round(record["obliquity_degrees"], 3),
        "SourceVoxelSize": [round(v, 4) for v in record["voxel_mm"]],
        "SourceShape": record["shape"],
        "VoxelSize": [float(voxel_mm)] * 3,
    })


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with runlog.stop_on_input_error():
        main(sm.input.source, sm.output.t1w, sm.output.sidecar, sm.params.voxel_mm, sm.params.n4,
             sm.params.skull_stripped, sm.params.dataset, sm.log[0])
    runlog.finish(sm)
