"""Bad input files stop a job with one message naming the file and the problem (dlmi.io.InputError).

The readers check what every rule reads (NIfTI, raw .npz, participants.tsv); rule scripts add the checks
that need two files (a label map on the grid of its image, a non-empty mask). Messages are pinned exactly.
"""
import gzip
import logging
import os
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from workflow_runner import REPO, rule_script

from dlmi import io
from dlmi.analysis import design
from dlmi.labels import REFERENCE_REGION, REGIONS, TISSUE_LABELS
from dlmi.sim import anatomy, cohort
from dlmi.spatial import orientation
from dlmi_workflow import config
from dlmi_workflow.bids import simulated_subjects

SHAPE = (10, 10, 10)
AFFINE = np.array([[2.0, 0, 0, -9], [0, 3.0, 0, -13], [0, 0, 4.0, -17], [0, 0, 0, 1]])


def script(repo, name):
    """A rule script of `repo` as a module (workflow_runner.rule_script)."""
    assert repo == REPO
    return rule_script(name)


def write_nifti(path, data, affine=AFFINE, *, qform=None, sform_code=1, qform_code=1):
    """Write a NIfTI with nibabel directly (no checks), qform and sform set as asked."""
    img = nib.Nifti1Image(np.asarray(data), None)
    img.set_sform(affine, code=sform_code)
    if qform_code:
        img.set_qform(affine if qform is None else qform, code=qform_code)
    nib.save(img, str(path))
    return str(path)


def image(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32)


def message(err):
    return str(err.value)


# ---------------------------------------------------------------------------------------------------------
# NIfTI: missing, corrupt, truncated, NaN/Inf, wrong dimensionality


def test_missing_nifti(tmp_path):
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: file not found"


def test_not_a_nifti(tmp_path):
    path = tmp_path / "noise.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a NIfTI header" * 3))
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f'{path}: not a NIfTI image, or its header is corrupt (nibabel: Cannot work out file '
                            f'type of "{path}")')


def test_nibabels_reason_is_kept(tmp_path):
    path = tmp_path / "t1w.nii"
    path.write_bytes(b"neither gzip nor NIfTI" * 20)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: not a NIfTI image, or its header is corrupt (nibabel: Cannot work out file "
                            f'type of "{path}")')
    path = path.rename(tmp_path / "t1w.nii.gz")
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: not a NIfTI image, or its header is corrupt (not gzip-compressed despite its "
                            "name, and read as such; nibabel: data code 26725 not recognized)")


@pytest.mark.parametrize("written, named", [("t1w.nii", "t1w.nii.gz"), ("t1w.nii.gz", "t1w.nii")])
def test_a_nifti_named_with_the_wrong_compression_is_read_by_its_content(tmp_path, caplog, written, named):
    """nibabel goes by the name (a plain .nii.gz is "not a gzip file", a gzipped .nii "cannot work out file
    type"); the content is a valid NIfTI, so it is read, and that is logged."""
    data = image()
    io.save_nifti(tmp_path / written, data, AFFINE)
    (tmp_path / written).rename(tmp_path / named)
    with caplog.at_level(logging.INFO, logger="dlmi.io"):
        loaded, affine = io.load_nifti(tmp_path / named)
    np.testing.assert_array_equal(loaded, data)
    np.testing.assert_array_equal(affine, AFFINE)
    content = "gzip-compressed" if written.endswith(".gz") else "not gzip-compressed"
    assert caplog.messages == [f"{tmp_path / named}: read by its content, which is {content} despite its name"]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti_named_with_the_wrong_compression(tmp_path, suffix):
    other = ".nii" if suffix == ".nii.gz" else ".nii.gz"
    path = tmp_path / f"t1w{other}"
    io.save_nifti(tmp_path / f"t1w{suffix}", image(), AFFINE)
    written = (tmp_path / f"t1w{suffix}").read_bytes()
    path.write_bytes(written[: len(written) * 2 // 3])
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: truncated or corrupt NIfTI (the voxel data cannot be read in full)"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti(tmp_path, suffix):
    path = tmp_path / f"t1w{suffix}"
    io.save_nifti(path, image(), AFFINE)
    io.load_nifti(path)  # whole file: fine
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: truncated or corrupt NIfTI (the voxel data cannot be read in full)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_voxels(tmp_path, bad):
    data = image()
    data[1, 2, 3] = data[4, 5, 6] = bad
    path = write_nifti(tmp_path / "pet.nii.gz", data)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: image has NaN or Inf voxels (2 of 1000)"


def test_nan_voxels_are_found_before_a_cast_to_integers(tmp_path):
    """A float label map with NaN must not turn into zeros when read as uint8."""
    data = np.ones(SHAPE, np.float32)
    data[0, 0, 0] = np.nan
    path = write_nifti(tmp_path / "labels.nii.gz", data)
    with pytest.raises(io.InputError, match="NaN or Inf voxels"):
        io.load_nifti(path, dtype=np.uint8)


def test_wrong_dimensionality(tmp_path):
    path = write_nifti(tmp_path / "four_d.nii.gz", np.zeros((*SHAPE, 2), np.float32))
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: expected a 3-D image, got shape (10, 10, 10, 2)"


# ---------------------------------------------------------------------------------------------------------
# values that the cast to the requested dtype would change


def test_float64_beyond_the_float32_range_is_refused(tmp_path):
    """1e39 is finite in float64 and passes the NaN/Inf check, but becomes inf as float32."""
    data = np.ones(SHAPE, np.float64)
    data[1, 2, 3] = 1e39
    path = write_nifti(tmp_path / "pet.nii.gz", data)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: voxel values 1 to 1e+39 do not fit the float32 it is read as "
                            "(range -3.40282e+38 to 3.40282e+38)")
    data[1, 2, 3] = -1e30  # float64 within the float32 range: read as usual
    loaded, _ = io.load_nifti(write_nifti(tmp_path / "ok.nii.gz", data))
    assert loaded.dtype == np.float32 and loaded.min() == np.float32(-1e30)


@pytest.mark.parametrize("stored, bad, found", [
    (np.int16, 300, "0 to 300"),
    (np.int16, -1, "-1 to 0"),
    (np.float32, 256, "0 to 256"),
])
def test_labels_beyond_the_integer_range_are_refused(tmp_path, stored, bad, found):
    """Read as uint8, 300 would wrap to 44 and -1 to 255: another label, silently."""
    labels = np.zeros(SHAPE, stored)
    labels[4, 5, 6] = bad
    path = write_nifti(tmp_path / "regions.nii.gz", labels)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path, dtype=np.uint8)
    assert message(err) == f"{path}: voxel values {found} do not fit the uint8 it is read as (range 0 to 255)"
    loaded, _ = io.load_nifti(path, dtype=np.int32)  # a type that holds them: read as stored
    assert loaded[4, 5, 6] == bad


def test_labels_within_the_integer_range_are_read(tmp_path):
    labels = np.zeros(SHAPE, np.int16)
    labels[4, 5, 6] = 255
    loaded, _ = io.load_nifti(write_nifti(tmp_path / "regions.nii.gz", labels), dtype=np.uint8)
    assert loaded.dtype == np.uint8 and loaded[4, 5, 6] == 255 and loaded.sum() == 255


# ---------------------------------------------------------------------------------------------------------
# orientation: flips and permutations are reoriented to RAS+ losslessly; the rest is refused


def world_of_max(data, affine):
    return affine @ np.array([*np.unravel_index(np.argmax(data), data.shape), 1.0])


@pytest.mark.parametrize("codes", ["LPS", "LAS", "RPI", "PIR", "SLP", "ASR"])
def test_flipped_or_permuted_axes_are_reoriented_to_ras(tmp_path, caplog, codes):
    data = image(seed=3)
    ras = nib.Nifti1Image(data, AFFINE)
    stored = ras.as_reoriented(orientations_from_ras(codes))
    assert orientation.axis_codes(stored.affine) == codes
    path = write_nifti(tmp_path / "t1w.nii.gz", np.asarray(stored.dataobj), stored.affine)
    with caplog.at_level(logging.INFO, logger="dlmi.io"):
        loaded, affine = io.load_nifti(path)
    np.testing.assert_array_equal(loaded, data)  # the same voxels, no resampling
    np.testing.assert_allclose(affine, AFFINE, atol=1e-5)
    np.testing.assert_allclose(world_of_max(loaded, affine), world_of_max(np.asarray(stored.dataobj), stored.affine),
                               atol=1e-5)
    assert loaded.flags.c_contiguous  # torch.from_numpy needs positive strides
    assert caplog.messages == [f"{path}: reoriented from {codes} to RAS+ (axis flips/permutation, no resampling)"]


def orientations_from_ras(codes):
    return nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                           nib.orientations.axcodes2ornt(tuple(codes)))


def test_ras_images_are_read_as_stored_without_a_log_line(tmp_path, caplog):
    data = image()
    path = tmp_path / "ras.nii.gz"
    io.save_nifti(path, data, AFFINE)
    with caplog.at_level(logging.INFO, logger="dlmi.io"):
        loaded, affine = io.load_nifti(path)
    np.testing.assert_array_equal(loaded, data)
    np.testing.assert_array_equal(affine, AFFINE)
    assert caplog.messages == []


def test_sheared_affine_is_refused(tmp_path):
    sheared = AFFINE.copy()
    sheared[:3, :3] = [[2.0, 0.5, 0], [0, 2.0, 0], [0, 0, 2.0]]
    path = write_nifti(tmp_path / "sheared.nii.gz", image(), sheared, qform_code=0)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: affine is sheared: voxel axes 0 and 1 meet at 75.96 degrees, not 90; "
                            "refusing to guess the orientation")


def test_oblique_affine_is_refused(tmp_path):
    angle = np.radians(10.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = AFFINE.copy()
    oblique[:3, :3] = rotation @ np.diag([2.0, 2.0, 2.0])
    path = write_nifti(tmp_path / "oblique.nii.gz", image(), oblique)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: affine is oblique: voxel axes are rotated up to 10.00 degrees from the "
                            "world (RAS+) axes; resample the image to an axis-aligned grid first")


def test_singular_affine_is_refused(tmp_path):
    singular = AFFINE.copy()
    singular[:3, 2] = 0.0
    path = write_nifti(tmp_path / "flat.nii.gz", image(), singular, qform_code=0)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == (f"{path}: affine is singular (a voxel axis has zero length or two axes are "
                            "parallel)")


def test_image_without_orientation_is_refused(tmp_path):
    path = write_nifti(tmp_path / "scanner.nii.gz", image(), sform_code=0, qform_code=0)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: no orientation: qform_code and sform_code are both 0"


def test_qform_and_sform_that_disagree_are_refused(tmp_path):
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    path = write_nifti(tmp_path / "two.nii.gz", image(), AFFINE, qform=shifted)
    with pytest.raises(io.InputError) as err:
        io.load_nifti(path)
    assert message(err) == f"{path}: qform and sform disagree (grid corners 5.0 mm apart)"


# ---------------------------------------------------------------------------------------------------------
# a label map or mask used with an image: same grid, not empty


def tissue_inputs(tmp_path, label_shape=SHAPE, labels=None):
    """Files of rule extract_features for a 10^3 subject: CSF/GM/WM maps, regions, PET in T1 space."""
    paths = {}
    for name in ("csf", "gm", "wm", "pet_in_t1"):
        paths[name] = str(tmp_path / f"{name}.nii.gz")
        io.save_nifti(paths[name], image(seed=len(paths)), AFFINE)
    paths["regions"] = str(tmp_path / "regions.nii.gz")
    labels = np.ones(label_shape, np.uint8) if labels is None else labels
    io.save_nifti(paths["regions"], labels, AFFINE, dtype=np.uint8)
    return paths


def test_label_map_with_another_shape_than_its_image(tmp_path, repo):
    paths = tissue_inputs(tmp_path, label_shape=(10, 10, 8))
    tsv = tmp_path / "features.tsv"
    with pytest.raises(io.InputError) as err:
        script(repo, "extract_features").main(**paths, tsv=tsv, subject="001")
    assert message(err) == (f"{paths['regions']}: label map shape (10, 10, 8) differs from the shape "
                            f"(10, 10, 10) of its image {paths['csf']}")
    assert not tsv.exists()


def test_label_map_on_another_grid_than_its_image(tmp_path):
    moved = AFFINE.copy()
    moved[2, 3] += 4.0
    with pytest.raises(io.InputError) as err:
        io.check_same_grid("regions.nii.gz", SHAPE, moved, "t1w.nii.gz", SHAPE, AFFINE)
    assert message(err) == "regions.nii.gz: label map affine differs from the affine of its image t1w.nii.gz"


def test_empty_label_map(tmp_path, repo):
    paths = tissue_inputs(tmp_path, labels=np.zeros(SHAPE, np.uint8))
    with pytest.raises(io.InputError) as err:
        script(repo, "extract_features").main(**paths, tsv=tmp_path / "features.tsv", subject="001")
    assert message(err) == f"{paths['regions']}: label map is empty (no nonzero voxel)"


def test_empty_brain_mask(tmp_path, repo):
    from dlmi.register import itk, svf

    inp = {"t1w": str(tmp_path / "t1w.nii.gz"), "xfm": str(tmp_path / "xfm.txt"),
           "velocity": str(tmp_path / "velocity.nii.gz"), "brain": str(tmp_path / "brain.nii.gz"),
           "regions": str(tmp_path / "regions.nii.gz"), "tissue_prior": str(tmp_path / "tissue.nii.gz")}
    io.save_nifti(inp["t1w"], image(), AFFINE)
    itk.write_transform(inp["xfm"], np.eye(4))
    svf.save_velocity(inp["velocity"], np.zeros((3, *SHAPE), np.float32), AFFINE)
    io.save_nifti(inp["brain"], np.zeros(SHAPE), AFFINE, dtype=np.uint8)
    for name in ("regions", "tissue_prior"):
        io.save_nifti(inp[name], np.ones(SHAPE), AFFINE, dtype=np.uint8)
    with pytest.raises(io.InputError) as err:
        script(repo, "segment_t1").main(inp, {}, device="cpu")
    assert message(err) == f"{inp['brain']}: mask is empty (no nonzero voxel)"


def region_map(empty=None):
    """Labels of SHAPE in which every region of dlmi.labels.REGIONS has voxels, but region `empty`."""
    labels = (np.arange(np.prod(SHAPE)) % (max(REGIONS.values()) + 1)).reshape(SHAPE).astype(np.uint8)
    if empty is not None:
        labels[labels == REGIONS[empty]] = REGIONS["none"]
    return labels


def test_empty_reference_region(tmp_path, repo):
    paths = tissue_inputs(tmp_path, labels=region_map(empty=REFERENCE_REGION))
    with pytest.raises(io.InputError) as err:
        script(repo, "extract_features").main(**paths, tsv=tmp_path / "features.tsv", subject="001")
    assert message(err) == (f"{paths['pet_in_t1']}: SUVR in the regions of {paths['regions']}, weighted by "
                            f"{paths['gm']}: region label {REGIONS[REFERENCE_REGION]} is empty in this subject's "
                            "segmentation (no voxel)")


def test_region_without_grey_matter(tmp_path, repo):
    labels = region_map()
    paths = tissue_inputs(tmp_path, labels=labels)
    gm = image(seed=2)
    gm[labels == REGIONS["temporal"]] = 0.0
    io.save_nifti(paths["gm"], gm, AFFINE)
    with pytest.raises(io.InputError) as err:
        script(repo, "extract_features").main(**paths, tsv=tmp_path / "features.tsv", subject="001")
    assert message(err).endswith(f"region label {REGIONS['temporal']} is empty in this subject's segmentation "
                                 "(zero total weight)")


def test_no_uptake_in_the_reference_region(tmp_path, repo):
    labels = region_map()
    paths = tissue_inputs(tmp_path, labels=labels)
    pet = image(seed=4)
    pet[labels == REGIONS[REFERENCE_REGION]] = 0.0
    io.save_nifti(paths["pet_in_t1"], pet, AFFINE)
    tsv = tmp_path / "features.tsv"
    with pytest.raises(io.InputError) as err:
        script(repo, "extract_features").main(**paths, tsv=tsv, subject="001")
    assert message(err) == (f"{paths['pet_in_t1']}: SUVR in the regions of {paths['regions']}, weighted by "
                            f"{paths['gm']}: mean uptake 0 in the reference region (label "
                            f"{REGIONS[REFERENCE_REGION]}) is not positive")
    assert not tsv.exists()


def segment_inputs(tmp_path, t1w, prior):
    """Files of rule segment_t1 on SHAPE: identity registration to a template whose brain mask is full."""
    from dlmi.register import itk, svf

    inp = {"t1w": str(tmp_path / "t1w.nii.gz"), "xfm": str(tmp_path / "xfm.txt"),
           "velocity": str(tmp_path / "velocity.nii.gz"), "brain": str(tmp_path / "brain.nii.gz"),
           "regions": str(tmp_path / "regions.nii.gz"), "tissue_prior": str(tmp_path / "tissue.nii.gz")}
    io.save_nifti(inp["t1w"], t1w, AFFINE)
    itk.write_transform(inp["xfm"], np.eye(4))
    svf.save_velocity(inp["velocity"], np.zeros((3, *SHAPE), np.float32), AFFINE)
    io.save_nifti(inp["brain"], np.ones(SHAPE), AFFINE, dtype=np.uint8)
    io.save_nifti(inp["regions"], np.ones(SHAPE), AFFINE, dtype=np.uint8)
    io.save_nifti(inp["tissue_prior"], prior, AFFINE, dtype=np.uint8)
    return inp


def slabs(csf, gm, wm):
    """(X, Y, Z) of SHAPE holding csf for x < 3, gm for 3 <= x < 7 and wm beyond."""
    out = np.full(SHAPE, float(wm))
    out[:7], out[:3] = gm, csf
    return out


def test_prior_without_a_tissue_class(tmp_path, repo):
    inp = segment_inputs(tmp_path, slabs(1.0, 2.0, 3.0), slabs(TISSUE_LABELS["gm"], TISSUE_LABELS["gm"],
                                                                TISSUE_LABELS["wm"]))
    with pytest.raises(io.InputError) as err:
        script(repo, "segment_t1").main(inp, {}, device="cpu")
    assert message(err) == (f"{inp['tissue_prior']}: no csf voxels in the prior label map inside the brain mask "
                            f"of {inp['t1w']}")


def test_image_that_is_not_t1_weighted(tmp_path, repo):
    """CSF brightest, WM darkest (T2-weighted): the partial-volume model of the segmentation does not apply."""
    prior = slabs(*(TISSUE_LABELS[name] for name in ("csf", "gm", "wm")))
    inp = segment_inputs(tmp_path, slabs(3.0, 2.0, 1.0), prior)
    with pytest.raises(io.InputError) as err:
        script(repo, "segment_t1").main(inp, {}, device="cpu")
    assert message(err) == (f"{inp['t1w']}: tissue means must increase CSF < GM < WM for a T1-weighted image, "
                            "got [3.0, 2.0, 1.0]")


FEATURE_SETS = {"volumes": ["hippocampus_L_ml", "hippocampus_R_ml", "ventricle_L_ml", "ventricle_R_ml", "icv_ml"],
                "suvr": ["suvr_hippocampus_L", "suvr_hippocampus_R", "suvr_temporal", "suvr_parietal"]}


def features_table(tmp_path, edit=lambda table: table):
    """A features.tsv of four subjects with every column of FEATURE_SETS, edited by `edit`."""
    columns = FEATURE_SETS["volumes"] + FEATURE_SETS["suvr"]
    table = pd.DataFrame({"participant_id": ["sub-001", "sub-002", "sub-003", "sub-004"],
                          **{c: [1.0 + k, 2.0 + k, 3.0 + k, 0.5 * k] for k, c in enumerate(columns)}})
    path = tmp_path / "features.tsv"
    io.write_tsv(path, edit(table))
    return path


def model_params(**changes):
    return {"task": "diagnosis", "model": "linear_svm", "grid": {"C": [1.0]}, "features": "all",
            "columns": FEATURE_SETS["volumes"] + FEATURE_SETS["suvr"], "cv_folds": 2, "inner_folds": 2,
            "permutations": 0, "bootstrap": 100, "ci_level": 0.9} | changes


def train(repo, tmp_path, features, participants_schema, participants=None, **changes):
    """The cross_validate rule's main on `features` with splits made by the make_splits rule's main."""
    participants = write_participants(tmp_path, participants or PARTICIPANTS4)  # 2 AD, 2 CN
    splits = tmp_path / "splits.tsv"
    script(repo, "make_splits").main(participants, participants_schema, splits, "diagnosis", SUBJECTS4, 2, 1, 1)
    outputs = {name: tmp_path / name for name in ("metrics.tsv", "predictions.tsv")}
    script(repo, "cross_validate").main(features, participants, participants_schema, splits, *outputs.values(),
                                        model_params(**changes), seed=1)
    return outputs


@pytest.mark.parametrize("cell", [np.nan, np.inf, "high"])
def test_missing_feature_value(tmp_path, repo, participants_schema, cell):
    def edit(table):
        table = table.astype({"suvr_temporal": object})
        table.loc[1, "suvr_temporal"] = cell
        return table

    path = features_table(tmp_path, edit)
    with pytest.raises(io.InputError) as err:
        train(repo, tmp_path, path, participants_schema)
    assert message(err) == (f"{path}: line 3 (sub-002): missing feature value in column 'suvr_temporal' "
                            "(1 of 36 values missing or not finite)")
    assert not (tmp_path / "metrics.tsv").exists()


def test_missing_feature_column(tmp_path, repo, participants_schema):
    path = features_table(tmp_path, lambda table: table.drop(columns=["icv_ml", "suvr_parietal"]))
    with pytest.raises(io.InputError) as err:
        train(repo, tmp_path, path, participants_schema)
    assert message(err) == (f"{path}: missing columns 'icv_ml', 'suvr_parietal' "
                            "(feature set 'all': config key model.feature_sets)")


def test_a_task_subject_without_features(tmp_path, repo, participants_schema):
    path = features_table(tmp_path, lambda table: table[table.participant_id != "sub-004"])
    with pytest.raises(io.InputError) as err:
        train(repo, tmp_path, path, participants_schema)
    assert message(err) == f"{path}: no row for sub-004 (task diagnosis, {tmp_path / 'splits.tsv'})"


def test_a_task_class_smaller_than_the_folds(tmp_path, repo, participants_schema):
    splits = tmp_path / "splits.tsv"
    with pytest.raises(io.InputError) as err:  # PARTICIPANTS: 1 AD, 2 CN
        script(repo, "make_splits").main(write_participants(tmp_path, PARTICIPANTS), participants_schema, splits,
                                         "diagnosis", EXPECTED, 2, 1, 1)
    assert message(err) == ("task diagnosis: 1 AD subject(s), fewer than the 2 cross-validation folds "
                            "(config key model.cv_folds)")
    assert not splits.exists()


def test_clinical_variables_are_read_from_participants_and_coded(tmp_path, repo, participants_schema):
    outputs = train(repo, tmp_path, features_table(tmp_path), participants_schema,
                    columns=["icv_ml", "age", "sex", "cognitive_score"])
    assert pd.read_csv(outputs["metrics.tsv"], sep="\t").n.iloc[0] == 4
    participants = cohort.read_participants(tmp_path / "participants.tsv", SUBJECTS4, participants_schema)
    coded = design.clinical_table(participants, ["sex", "age"]).set_index("participant_id")
    assert coded.sex.to_dict() == {"sub-001": 1.0, "sub-002": 0.0, "sub-003": 0.0, "sub-004": 1.0}
    assert coded.age["sub-004"] == 70.0


@pytest.mark.parametrize("cell, columns, expected", [
    ("21", ["icv_ml", "cdr_sb"], "missing column 'cdr_sb' (feature set 'all': config key model.feature_sets)"),
    ("n/a", ["cognitive_score"],
     "line 2 (sub-001): missing feature value in column 'cognitive_score' (1 of 4 values missing or not finite)"),
])
def test_a_clinical_variable_missing_from_participants(tmp_path, repo, participants_schema, cell, columns,
                                                       expected):
    participants = PARTICIPANTS4.replace("63.3\tM\t21", f"63.3\tM\t{cell}")  # sub-001's cognitive_score
    with pytest.raises(io.InputError) as err:
        train(repo, tmp_path, features_table(tmp_path), participants_schema, participants, columns=columns)
    assert message(err) == f"{tmp_path / 'participants.tsv'}: {expected}"
    assert not (tmp_path / "metrics.tsv").exists()


def test_a_feature_set_holding_the_tasks_label_is_refused(tmp_path, repo, participants_schema):
    with pytest.raises(io.InputError) as err:
        train(repo, tmp_path, features_table(tmp_path), participants_schema, columns=["icv_ml", "group"])
    assert message(err) == ("feature set 'all' (config key model.feature_sets) holds 'group', the label of task "
                            "diagnosis")


def test_participants_without_the_tasks_label_column(tmp_path, repo, participants_schema):
    text = "participant_id\tage\n" + "".join(f"sub-00{k}\t70\n" for k in range(1, 5))
    with pytest.raises(io.InputError) as err:
        script(repo, "make_splits").main(write_participants(tmp_path, text), participants_schema,
                                         tmp_path / "splits.tsv", "diagnosis", SUBJECTS4, 2, 1, 1)
    assert message(err).startswith(f"{tmp_path / 'participants.tsv'}: missing column")
    assert "'group'" in message(err)


def test_splits_with_a_subject_in_train_and_test_are_refused(tmp_path, repo, participants_schema):
    features = features_table(tmp_path)
    train(repo, tmp_path, features, participants_schema)  # the rule's own splits pass
    splits = pd.read_csv(tmp_path / "splits.tsv", sep="\t")
    leaked = splits[splits.set == "test"].head(1).assign(set="train")
    io.write_tsv(tmp_path / "splits.tsv", pd.concat([splits, leaked]))
    with pytest.raises(io.InputError) as err:
        script(repo, "cross_validate").main(features, tmp_path / "participants.tsv", participants_schema,
                                            tmp_path / "splits.tsv", tmp_path / "m.tsv", tmp_path / "p.tsv",
                                            model_params(), seed=1)
    assert f"{tmp_path / 'splits.tsv'}: repeat 0, fold " in message(err)
    assert message(err).endswith("in both train and test")


def test_template_labels_on_another_grid(tmp_path, repo):
    paths = {}
    for name, shape in (("fractions", (*SHAPE, 3)), ("tissue", SHAPE), ("regions", (9, 10, 10)), ("brain", SHAPE)):
        paths[name] = str(tmp_path / f"{name}.nii.gz")
        io.save_nifti(paths[name], np.ones(shape), AFFINE)
    with pytest.raises(io.InputError) as err:
        anatomy.load_template(paths["fractions"], paths["tissue"], paths["regions"], paths["brain"], 2.0)
    assert message(err) == (f"{paths['regions']}: label map shape (9, 10, 10) differs from the shape "
                            f"(10, 10, 10) of its image {paths['fractions']}")


# ---------------------------------------------------------------------------------------------------------
# raw data (k-space, sinograms): acquisition parameters, truncation, NaN


CT_PARAMS = {"angles_rad": [0.0, 1.0], "pixel_mm": 2.0, "shape": [4, 4, 2], "affine": AFFINE.tolist(),
             "mu_water_per_mm": 0.02}


@pytest.mark.parametrize("dropped, text", [
    (("pixel_mm",), "parameter 'pixel_mm'"),
    (("angles_rad", "affine"), "parameters 'angles_rad', 'affine'"),
])
def test_sinogram_without_acquisition_parameters(tmp_path, repo, dropped, text):
    path = tmp_path / "sub-001_sinogram.npz"
    io.save_npz(path, {k: v for k, v in CT_PARAMS.items() if k not in dropped},
                sinogram=np.ones((2, 2, 6), np.float32))
    out = tmp_path / "ct.nii.gz"
    with pytest.raises(io.InputError) as err:
        script(repo, "reconstruct_ct").main(str(path), str(out), {"filter": "ramp"}, device="cpu")
    assert message(err) == f"{path}: missing acquisition {text}"
    assert not out.exists()


def test_kspace_without_acquisition_parameters(tmp_path, repo):
    path = tmp_path / "sub-001_kspace.npz"
    io.save_npz(path, {"voxel_mm": [2.0, 2.0, 2.0], "shape": [4, 4, 4], "affine": AFFINE.tolist()},
                kspace=np.ones((2, 4, 4, 4), np.complex64))
    with pytest.raises(io.InputError) as err:
        script(repo, "reconstruct_mri").main(str(path), str(tmp_path / "t1w.nii.gz"), device="cpu")
    assert message(err) == f"{path}: missing acquisition parameter 'n_coils'"


def test_pet_sinogram_without_its_scale(tmp_path, repo):
    path = tmp_path / "sub-001_pet_sinogram.npz"
    params = {"angles_rad": [0.0], "pixel_mm": 8.0, "shape": [2, 2, 2], "affine": AFFINE.tolist()}
    io.save_npz(path, params, counts=np.ones((2, 1, 3), np.float32))
    ct = tmp_path / "ct.nii.gz"
    io.save_nifti(ct, np.zeros(SHAPE), AFFINE)
    with pytest.raises(io.InputError) as err:
        script(repo, "reconstruct_pet").main(str(path), str(ct), str(tmp_path / "pet.nii.gz"),
                                             {"iterations": 1, "subsets": 1}, device="cpu")
    assert message(err) == f"{path}: missing acquisition parameter 'scale'"


def test_truncated_raw_data(tmp_path):
    path = tmp_path / "sub-001_sinogram.npz"
    io.save_npz(path, CT_PARAMS, sinogram=np.random.default_rng(0).random((8, 8, 8)).astype(np.float32))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(io.InputError) as err:
        io.load_npz(path, arrays=("sinogram",), params=("pixel_mm",))
    assert message(err) == f"{path}: truncated or corrupt raw data (not a readable .npz archive)"


def test_raw_data_without_its_array_or_any_parameters(tmp_path):
    path = tmp_path / "raw.npz"
    io.save_npz(path, CT_PARAMS, counts=np.ones(3, np.float32))
    with pytest.raises(io.InputError) as err:
        io.load_npz(path, arrays=("sinogram",), params=())
    assert message(err) == f"{path}: missing array 'sinogram'"
    np.savez(path, sinogram=np.ones(3))
    with pytest.raises(io.InputError) as err:
        io.load_npz(path, arrays=("sinogram",), params=())
    assert message(err) == f"{path}: no acquisition parameters stored"


def test_raw_data_with_nan(tmp_path):
    path = tmp_path / "kspace.npz"
    kspace = np.ones((2, 3, 3), np.complex64)
    kspace[0, 1, 1] = complex(np.nan, 0)
    io.save_npz(path, {}, kspace=kspace)
    with pytest.raises(io.InputError) as err:
        io.load_npz(path, arrays=("kspace",), params=())
    assert message(err) == f"{path}: array 'kspace' has NaN or Inf values (1 of 18)"


# ---------------------------------------------------------------------------------------------------------
# participants.tsv


@pytest.fixture(scope="module")
def participants_schema(repo):
    return config.load_yaml(repo / "workflow/schemas/participants.schema.yaml")


PARTICIPANTS = """participant_id\tgroup\tage\tsex\tcognitive_score
sub-001\tAD\t63.3\tM\t21
sub-002\tCN\t83.3\tF\t28
sub-003\tCN\t85.5\tF\t26
"""
EXPECTED = ["sub-001", "sub-002", "sub-003"]
SUBJECTS4 = [*EXPECTED, "sub-004"]
PARTICIPANTS4 = PARTICIPANTS.replace("sub-003\tCN", "sub-003\tAD") + "sub-004\tCN\t70.0\tM\t27\n"


def write_participants(tmp_path, text):
    path = tmp_path / "participants.tsv"
    path.write_text(text)
    return path


def test_participants_written_by_the_workflow_read_back(tmp_path, participants_schema):
    ids = simulated_subjects(12)
    table = cohort.participants_table(cohort.Cohort(n_subjects=12), ids)
    io.write_tsv(tmp_path / "participants.tsv", table)
    read = cohort.read_participants(tmp_path / "participants.tsv", [f"sub-{i}" for i in ids], participants_schema)
    assert read.equals(table)


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t + "sub-002\tAD\t70\tM\t20\n", "duplicate participant_id sub-002 (lines 3, 5)"),
    (lambda t: t.replace("sub-002\tCN", "sub-002\tMCI"),
     "line 3 (sub-002): column 'group': 'MCI' is not one of ['CN', 'sMCI', 'pMCI', 'AD']"),
    (lambda t: t.replace("sub-003\t", "\t"), "line 4: empty value in column 'participant_id'"),
    (lambda t: t.replace("\t26", "\t"), "line 4: empty value in column 'cognitive_score'"),
    (lambda t: t.replace("sub-003\t", "n/a\t"), "line 4: empty value in column 'participant_id'"),
    (lambda t: t.replace("sub-003\t", "../003\t"),
     "line 4 (../003): column 'participant_id': '../003' does not match '^sub-[a-zA-Z0-9]+$'"),
    (lambda t: t.replace("\t85.5", "\told"), "line 4 (sub-003): column 'age': 'old' is not of type 'number'"),
    (lambda t: t.replace("\t28", "\t27.5"),
     "line 3 (sub-002): column 'cognitive_score': 27.5 is not of type 'integer'"),
    (lambda t: t.replace("\tgroup", "\tdiagnosis"), "missing column 'group'"),
    (lambda t: t.replace("sub-003\tCN\t85.5\tF\t26\n", ""), "missing participant sub-003"),
])
def test_bad_participants(tmp_path, participants_schema, edit, problem):
    path = write_participants(tmp_path, edit(PARTICIPANTS))
    with pytest.raises(io.InputError) as err:
        cohort.read_participants(path, EXPECTED, participants_schema)
    assert message(err) == f"{path}: {problem}"


def test_participants_may_hold_more_than_the_expected_subjects(tmp_path, participants_schema):
    path = write_participants(tmp_path, PARTICIPANTS)
    table = cohort.read_participants(path, ["sub-003"], participants_schema)
    assert list(table.participant_id) == EXPECTED and table.cognitive_score.dtype.kind == "i"


def test_a_missing_value_is_n_a_as_bids_writes_it(tmp_path, participants_schema):
    """n/a is BIDS's missing value: read as NaN in a numeric column (the schema does not check it), and the
    rest of the column keeps its type."""
    path = write_participants(tmp_path, PARTICIPANTS.replace("\t26", "\tn/a"))
    table = cohort.read_participants(path, EXPECTED, participants_schema)
    assert table.cognitive_score.isna().tolist() == [False, False, True]
    assert table.age.dtype.kind == "f" and table.group.tolist() == ["AD", "CN", "CN"]


def test_missing_participants_table(tmp_path, participants_schema):
    with pytest.raises(io.InputError) as err:
        cohort.read_participants(tmp_path / "participants.tsv", EXPECTED, participants_schema)
    assert message(err) == f"{tmp_path / 'participants.tsv'}: file not found"


def test_atomic_writes_give_the_usual_file_mode(tmp_path):
    """Results are readable by the group on a shared cluster, as with a plain open(): the writers' temporary
    files (mkstemp, 0600) get the mode the umask allows before they are renamed."""
    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "x.json", {"a": 1})
        io.save_nifti(tmp_path / "x.nii.gz", np.zeros((2, 2, 2)), np.eye(4))
    finally:
        os.umask(old)
    for name in ("x.json", "x.nii.gz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_a_sheared_bids_scan_is_refused_with_its_name(repo, tmp_path):
    """conform_t1w resamples oblique scans but refuses a sheared one (no rigid grid describes it)."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[0, 1] = 0.4
    path = tmp_path / "sub-01_T1w.nii.gz"
    write_nifti(path, np.ones((8, 8, 8), np.float32), affine, qform_code=0)  # a qform cannot hold a shear
    with pytest.raises(io.InputError, match=f"^{re.escape(str(path))}: affine is sheared"):
        script(repo, "conform_t1w").main(str(path), str(tmp_path / "out.nii.gz"), str(tmp_path / "out.json"), 2.0,
                                         n4=False, skull_stripped="no", dataset_root=str(tmp_path))

