"""Provenance records: sidecar names, config hash, code version with and without git, packages, records."""
import json
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from dlmi import io, seeding
from dlmi_workflow import config as dlmi_config
from dlmi_workflow import provenance, runlog

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.parametrize("output, sidecar", [
    ("results/sub-001/anat/sub-001_desc-recon_T1w.nii.gz", "results/sub-001/anat/sub-001_desc-recon_T1w.prov.json"),
    ("results/sub-001/anat/sub-001_kspace.npz", "results/sub-001/anat/sub-001_kspace.prov.json"),
    ("results/participants.tsv", "results/participants.prov.json"),
    ("results/participants.json", "results/participants.prov.json"),
    ("results/dataset_description.json", "results/dataset_description.prov.json"),
    ("results/sub-001/anat/sub-001_from-T1w_to-template_mode-image_xfm.txt",
     "results/sub-001/anat/sub-001_from-T1w_to-template_mode-image_xfm.prov.json"),
    ("results/group/qc/recon_t1.png", "results/group/qc/recon_t1.prov.json"),
])
def test_sidecar_path_replaces_the_extension(output, sidecar):
    assert provenance.sidecar_path(output) == Path(sidecar)
    assert provenance.is_sidecar(sidecar) and not provenance.is_sidecar(output)


def test_sidecar_of_a_json_output_is_not_the_output_itself():
    for output in ("a/sub-001_desc-truth_anatomy.json", "a/participants.json"):
        assert provenance.sidecar_path(output) != Path(output)


def tiny_config():
    schema = dlmi_config.load_yaml(SCHEMA)
    return dlmi_config.validate(dlmi_config.load_yaml(REPO / "config" / "tiny.yaml"), schema), schema


def test_config_hash_is_stable_and_ignores_key_order():
    config, _ = tiny_config()
    reordered = json.loads(json.dumps(config, sort_keys=True))
    reordered = dict(reversed(list(reordered.items())))
    assert provenance.config_hash(config) == provenance.config_hash(reordered)
    assert provenance.config_hash(config).startswith("sha256:") and len(provenance.config_hash(config)) == 71
    again, _ = tiny_config()
    assert provenance.config_hash(again) == provenance.config_hash(config)


def test_config_hash_changes_with_any_value():
    config, schema = tiny_config()
    base = provenance.config_hash(config)
    changed = dlmi_config.validate({**dlmi_config.load_yaml(REPO / "config" / "tiny.yaml"), "device": "cpu"},
                                   schema)
    assert provenance.config_hash(changed) != base
    deep = json.loads(json.dumps(config))
    deep["registration"]["t1_to_template"]["iterations"][-1] += 1
    assert provenance.config_hash(deep) != base


def copy_sources(dest: Path) -> Path:
    for sub in ("scripts", "workflow", "envs"):
        shutil.copytree(REPO / sub, dest / sub, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy(REPO / name, dest / name)
    return dest


def test_code_version_without_git_is_a_hash_of_the_sources(tmp_path):
    root = copy_sources(tmp_path / "copy")
    version = provenance.code_version(root)
    assert provenance.git_describe(root) is None
    assert version == "src-" + provenance.source_hash(root).split(":")[1][:12]
    assert provenance.source_hash(root) == provenance.source_hash(REPO)  # same bytes, same hash
    ct = root / "scripts" / "dlmi" / "recon" / "ct.py"
    ct.write_text(ct.read_text() + "\n# an edit\n")
    assert provenance.code_version(root) != version
    (root / "scripts" / "dlmi" / "__pycache__").mkdir(exist_ok=True)
    (root / "scripts" / "dlmi" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert provenance.code_version(root) == provenance.code_version(root)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_in_a_git_checkout_is_git_describe(tmp_path):
    root = copy_sources(tmp_path / "repo")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    subprocess.run([*git, "tag", "v1.2.3"], check=True)
    assert provenance.code_version(root) == "v1.2.3"
    (root / "scripts" / "dlmi" / "recon" / "ct.py").write_text("# changed\n")
    assert provenance.code_version(root) == "v1.2.3-dirty"


def test_package_versions_lists_imported_third_party_packages_only():
    import nibabel
    import numpy

    versions = provenance.package_versions()
    assert versions["numpy"] == numpy.__version__ and versions["nibabel"] == nibabel.__version__
    assert "json" not in versions and "os" not in versions
    fake = {"numpy": numpy, "numpy.linalg": numpy.linalg, "json": json}
    assert provenance.package_versions(fake) == {"numpy": numpy.__version__}


def test_job_record_has_every_required_key_and_is_json():
    config, _ = tiny_config()
    record = provenance.job_record(
        rule="simulate_ct", wildcards={"subject": "001"}, inputs=["a.nii.gz"], outputs=["b.npz"], config=config,
        code="v1", source_digest="sha256:00", packages={"numpy": "2"}, device="cpu", study_seed=7,
        derived_seeds={"001/simulate_ct": 5}, start="2026-01-01T00:00:00Z", end="2026-01-01T00:00:01Z",
    )
    assert provenance.missing_keys(record) == []
    assert record["Seed"] == {"Study": 7, "Derived": {"001/simulate_ct": 5}}
    assert record["ConfigHash"] == provenance.config_hash(config)
    assert json.loads(provenance.canonical_json(record)) == record
    assert provenance.missing_keys({"Rule": "x"})[0] == "Wildcards"


def test_utc_time_is_iso_8601_with_z():
    from datetime import datetime, timedelta, timezone

    moment = datetime(2026, 3, 1, 13, 5, 7, 999, tzinfo=timezone(timedelta(hours=2)))
    assert provenance.iso_utc(moment) == "2026-03-01T11:05:07Z"
    assert datetime.fromisoformat(provenance.utc_now()).tzinfo is not None


def test_derived_seeds_are_recorded():
    seed = seeding.derive_seed(7, "042", "unit_test_purpose")
    assert seeding.derived_seeds()["042/unit_test_purpose"] == seed
    seeding.rng(7, "043", "unit_test_purpose").random()
    assert "043/unit_test_purpose" in seeding.derived_seeds()


def test_dataset_description_is_a_bids_derivative():
    description = provenance.dataset_description("v1.0-3-gabc", "https://example.org/dlmi.git")
    assert description["DatasetType"] == "derivative"
    assert description["BIDSVersion"].count(".") == 2
    assert description["GeneratedBy"][0] | {"Description": ""} == {
        "Name": "dlmi-workflow", "Version": "v1.0-3-gabc", "CodeURL": "https://example.org/dlmi.git",
        "Description": ""}
    assert "CodeURL" not in provenance.dataset_description("v1")["GeneratedBy"][0]


def test_finish_writes_one_record_per_output_stem(tmp_path):
    """runlog.finish with a stand-in for Snakemake's job object, as a rule script's __main__ calls it."""
    outputs = [tmp_path / "participants.tsv", tmp_path / "participants.json", tmp_path / "sub-001_T1w.nii.gz"]
    for path in outputs:
        path.write_text("x")
    killed = tmp_path / ".sub-001_T1w.nii.gz.k1ll3d.nii.gz"  # what save_nifti leaves when killed mid-write
    killed.write_bytes(b"\x1f\x8b")
    unrelated = tmp_path / ".sub-002_T1w.nii.gz.abcdef.nii.gz"
    unrelated.write_bytes(b"")
    assert io.leftover_temporaries(outputs[2]) == [killed]
    config, _ = tiny_config()
    job = types.SimpleNamespace(
        rule="make_participants", wildcards=types.SimpleNamespace(items=lambda: [("subject", "001")]),
        input=[str(tmp_path / "in.tsv")], output=[str(p) for p in outputs], config=config,
        scriptdir=str(REPO / "scripts"),
    )
    runlog.start(None, "unit")
    seeding.rng(7, "001", "participant").random()
    np.zeros(1)
    written = runlog.finish(job)
    assert sorted(written) == sorted([tmp_path / "participants.prov.json", tmp_path / "sub-001_T1w.prov.json",
                                      tmp_path / "sub-001_T1w.json"])  # the image's BIDS sidecar
    assert json.loads((tmp_path / "sub-001_T1w.json").read_text())["Sources"] == []  # in.tsv: in no dataset
    record = json.loads(written[0].read_text())
    assert provenance.missing_keys(record) == []
    assert record["Outputs"] == [str(p) for p in outputs]
    assert record["Seed"]["Study"] == 7 and "001/participant" in record["Seed"]["Derived"]
    assert record["Device"] == "cpu" or record["Device"].startswith("cuda")
    assert record["Packages"]["numpy"] == np.__version__
    assert record["StartTime"] <= record["EndTime"]
    assert list(tmp_path.glob(".*")) == [unrelated]  # the killed attempt's temporary file is gone


def test_picked_devices_are_recorded():
    from dlmi import device

    device.pick_device("cpu")
    assert "cpu" in device.devices_used() and device.describe("cpu") == "cpu"


def test_a_nifti_output_gets_a_bids_sidecar_naming_its_sources_as_bids_uris(tmp_path):
    results, raw = tmp_path / "results", tmp_path / "rawdata"
    datasets = {"": str(results), "raw": str(raw)}
    assert provenance.image_sidecar_path("results/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz") == \
        Path("results/sub-01/anat/sub-01_desc-preproc_T1w.json")
    assert provenance.image_sidecar_path("results/sub-01/sub-01_features.tsv") is None
    sidecar = provenance.image_sidecar("segment_t1", [str(results / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz"),
                                                      str(raw / "sub-01/anat/sub-01_T1w.nii.gz"),
                                                      str(tmp_path / "resources/unet/unet.pt")], datasets)
    assert sidecar["Sources"] == ["bids::sub-01/anat/sub-01_desc-preproc_T1w.nii.gz",
                                  "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert provenance.dataset_description("v1", links={"raw": str(raw)})["DatasetLinks"] == {"raw": str(raw)}
    assert "DatasetLinks" not in provenance.dataset_description("v1")
