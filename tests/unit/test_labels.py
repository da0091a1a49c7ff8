"""dlmi.labels: one label table, and every module that writes or reads a label map agrees with it."""
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
    image = mri.t1_weighted_signal(props["pd"], props["t1_ms"], props["t2_ms"], sequence).to(torch.float32)
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
