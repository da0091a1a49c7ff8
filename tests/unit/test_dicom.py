"""dlmi_workflow.dicom: DICOM series written at test time (SimpleITK, from a NIfTI volume) converted by
dcm2niix into a BIDS dataset that discovery reads; the converted image is the source image, voxel for voxel
on the study's grid; a folder that does not convert gets one line and the others proceed."""
import numpy as np
import pytest
from bids_data import covering, grid_affine, mni_t1, rigid, scan, write_dicom_series
from conftest import REPO

from dlmi import io
from dlmi.spatial.conform import conform
from dlmi_workflow import config as study_config
from dlmi_workflow import dataset, dicom


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Subject 01: an oblique T1 series and a localizer; 02: two T1 series in ses-1; 03: files that are not
    DICOM. Returns (DICOM folder, BIDS folder, problems, the source volume and affine)."""
    root = tmp_path_factory.mktemp("dicom")
    source, source_affine = mni_t1()
    shape, affine = covering(grid_affine((3.0, 3.0, 3.5), degrees=(6.0, 0.0, 4.0)), (0.0, -18.0, 8.0))
    volume = np.round(scan(source, source_affine, rigid((4.0, 0.0, 0.0), (3.0, 0.0, 0.0)), shape, affine, seed=5))
    write_dicom_series(volume, affine, root / "dicom/01/t1", "T1 MPRAGE sag", "01", series=2)
    write_dicom_series(volume[:, :, :3], affine, root / "dicom/01/loc", "localizer", "01", series=1)
    for series in (3, 4):
        write_dicom_series(volume, affine, root / f"dicom/02/ses-1/s{series}", "t1_mprage", "02", series=series)
    (root / "dicom/03/junk").mkdir(parents=True)
    (root / "dicom/03/junk/slice0001.dcm").write_bytes(b"not a DICOM file" * 64)
    log = root / "dicom_to_bids.log"
    status = dicom.main([str(root / "dicom"), str(root / "bids"), "--log", str(log)])
    return root, status, log.read_text(), volume, affine


def test_t1_series_become_bids_t1w_images_with_sidecars(converted):
    root, _, _, _, _ = converted
    bids = root / "bids"
    names = sorted(str(p.relative_to(bids)) for p in bids.rglob("*.nii.gz"))
    assert names == ["sub-01/anat/sub-01_T1w.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_run-1_T1w.nii.gz",
                     "sub-02/ses-1/anat/sub-02_ses-1_run-2_T1w.nii.gz"]
    assert all(p.with_name(p.name[:-7] + ".json").exists() for p in bids.rglob("*.nii.gz"))
    assert (bids / "dataset_description.json").exists()
    assert (bids / "participants.tsv").read_text() == "participant_id\nsub-01\nsub-02\n"


def test_the_converted_image_is_the_source_on_the_study_grid(converted):
    root, _, _, volume, affine = converted
    data, stored_affine = io.load_nifti_as_stored(root / "bids/sub-01/anat/sub-01_T1w.nii.gz")
    ours, ours_affine, _ = conform(data, stored_affine, 2.0)
    truth, truth_affine, _ = conform(volume.astype(np.float32), affine, 2.0)
    np.testing.assert_allclose(ours_affine, truth_affine, atol=1e-3)  # DICOM stores positions to 1e-6 mm
    np.testing.assert_allclose(ours, truth, atol=0.5)  # trilinear of the same voxels at points 1e-3 mm apart


def test_a_folder_that_does_not_convert_gets_one_line_and_the_rest_proceeds(converted):
    root, status, log, _, _ = converted
    assert status == 1
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"{root / 'dicom/03'}: no series converted (dcm2niix: " in errors[0]
    assert "series 1 'localizer' is not a T1w" in log


def test_discovery_reads_the_converted_dataset(converted):
    root, _, _, _, _ = converted
    (root / "bids/participants.tsv").write_text("participant_id\tgroup\nsub-01\tAD\nsub-02\tCN\n")
    schema = study_config.load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    found = dataset.discover(study_config.validate({"input": {"bids_dir": str(root / "bids")}}, schema))
    assert found.groups == {"01": "AD", "02": "CN"} and found.t1w["02"].run == 2 and not found.problems
