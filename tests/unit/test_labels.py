"""dlmi.labels: one label table, and every module that writes or reads a label map agrees with it."""
import numpy as np
import pytest
import torch
from conftest import REPO

from dlmi import labels
from dlmi.analysis import metrics
from dlmi.recon import mri
from dlmi.segment import atlas
from dlmi.sim import anatomy


@pytest.mark.parametrize("kind", sorted(labels.DSEG_TABLES))
def test_shipped_dseg_tables_are_the_label_tables(kind):
    """resources/<kind>_dseg.tsv is what dlmi.labels says (regenerate with `python -m dlmi.labels`)."""
    assert (REPO / "resources" / f"{kind}_dseg.tsv").read_text() == labels.dseg_table(kind)


def test_label_numbers_are_unique_and_background_is_zero():
    for table in labels.DSEG_TABLES.values():
        assert len(set(table.values())) == len(table) and min(table.values()) == 0
    assert labels.TISSUES[0] == "background" and set(labels.BRAIN_CLASSES) <= set(labels.TISSUES)
    assert labels.REFERENCE_REGION in labels.REGIONS


def test_hard_labels_are_the_tissue_labels_of_the_classes():
    mask = torch.ones(len(labels.BRAIN_CLASSES), 1, 1, dtype=torch.bool)
    one_hot = torch.eye(len(labels.BRAIN_CLASSES))[:, :, None, None].permute(1, 0, 2, 3)  # voxel k is class k
    got = atlas.hard_labels(one_hot, mask)[:, 0, 0].tolist()
    assert got == [labels.TISSUE_LABELS[name] for name in labels.BRAIN_CLASSES]


def test_segmenting_the_phantom_recovers_its_tissue_labels(template_4mm):
    """The phantom's tissue map and the segmentation's hard labels use the same numbers: segmenting the
    noise-free T1-weighted image of the simulated template (the default sequence: inversion recovery, TR
    2000, TI 900, TE 4 ms), with the phantom's own labels as prior, gives the phantom's labels back (Dice >
    0.7 per brain class; 4 mm voxels, many of them partial-volume). A reordered table on either side would
    swap classes and drop a Dice towards 0."""
    template = anatomy.build_template(4.0)
    props = {k: torch.from_numpy(v) for k, v in anatomy.property_maps(template.fractions).items()}
    sequence = {"sequence": "inversion_recovery", "tr_ms": 2000.0, "te_ms": 4.0, "ti_ms": 900.0}
    image = mri.sequence_signal(props["pd"], props["t1_ms"], props["t2_ms"], sequence).to(torch.float32)
    mask = torch.from_numpy(template.brain_mask)
    means = atlas.class_means(image, torch.from_numpy(template.tissue), mask)
    found = atlas.hard_labels(atlas.partial_volume_fractions(image, mask, means), mask).numpy()
    dice = {}
    for name in labels.BRAIN_CLASSES:
        label = labels.TISSUE_LABELS[name]
        dice[name] = metrics.dice(found == label, (template.tissue == label) & template.brain_mask)
    assert dice["gm"] > 0.8 and dice["wm"] > 0.8 and dice["csf"] > 0.6, dice


def test_unet_classes_come_from_the_tissue_and_region_tables():
    """The U-Net's classes: background and the brain classes with their tissue labels, then the hippocampi and
    lateral ventricles, each side apart, under their REGIONS names (label = index in UNET_CLASSES)."""
    assert labels.UNET_CLASSES[0] == labels.TISSUES[labels.BACKGROUND]
    for name in labels.BRAIN_CLASSES:
        assert labels.UNET_LABELS[name] == labels.TISSUE_LABELS[name]
    assert set(labels.UNET_REGIONS) <= set(labels.REGIONS)
    assert {"hippocampus_L", "hippocampus_R", "ventricle_L", "ventricle_R"} == set(labels.UNET_REGIONS)
    assert list(labels.UNET_LABELS.values()) == list(range(len(labels.UNET_CLASSES)))
    assert labels.DSEG_TABLES["unet"] is labels.UNET_LABELS


def test_unet_targets_take_regions_over_tissue_and_drop_the_head():
    t, r = labels.TISSUE_LABELS, labels.REGIONS
    tissue = np.array([[[t["background"], t["scalp"], t["bone"], t["csf"], t["gm"], t["wm"], t["csf"], t["gm"],
                         t["gm"], t["csf"], t["scalp"]]]])
    regions = np.array([[[0, 0, 0, 0, r["frontal"], r["deep_gm"], r["ventricle_L"], r["hippocampus_L"],
                          r["hippocampus_R"], r["ventricle_R"], r["hippocampus_L"]]]])
    u = labels.UNET_LABELS
    expected = [0, 0, 0, u["csf"], u["gm"], u["wm"], u["ventricle_L"], u["hippocampus_L"], u["hippocampus_R"],
                u["ventricle_R"], 0]
    got = labels.unet_targets(tissue, regions)
    assert got.dtype == np.uint8 and got[0, 0].tolist() == expected
    with pytest.raises(ValueError, match="shape"):
        labels.unet_targets(tissue, regions[..., :3])


def test_unet_to_tissue_undoes_unet_targets_on_the_brain():
    rng = np.random.default_rng(3)
    tissue = rng.integers(0, len(labels.TISSUE_LABELS), (12, 10, 8)).astype(np.uint8)
    regions = rng.integers(0, len(labels.REGIONS), (12, 10, 8)).astype(np.uint8)
    hippocampus = np.isin(regions, [labels.REGIONS["hippocampus_L"], labels.REGIONS["hippocampus_R"]])
    ventricle = np.isin(regions, [labels.REGIONS["ventricle_L"], labels.REGIONS["ventricle_R"]])
    brain = np.isin(tissue, [labels.TISSUE_LABELS[name] for name in ("csf", "gm", "wm")])
    expected = np.where(brain, tissue, 0)
    expected[brain & hippocampus] = labels.TISSUE_LABELS["gm"]
    expected[brain & ventricle] = labels.TISSUE_LABELS["csf"]
    assert np.array_equal(labels.unet_to_tissue(labels.unet_targets(tissue, regions)), expected)


def test_the_unet_mirror_swaps_left_and_right_and_keeps_the_rest():
    mirror, names = labels.UNET_MIRROR, labels.UNET_CLASSES
    assert sorted(mirror) == list(range(len(names))) and all(mirror[mirror[k]] == k for k in range(len(names)))
    for k, name in enumerate(names):
        side = {"_L": "_R", "_R": "_L"}.get(name[-2:])
        assert names[mirror[k]] == (name[:-2] + side if side else name)
