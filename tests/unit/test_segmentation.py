import numpy as np
import pytest
import torch

from dlmi.segment import atlas

MEANS = torch.tensor([0.02, 0.07, 0.16], dtype=torch.float64)  # CSF, GM, WM of an IR T1-weighted image


def mixed_image(seed=0, shape=(24, 24, 24)):
    """Random partial-volume voxels: each a CSF/GM or GM/WM mixture with a known fraction."""
    rng = np.random.default_rng(seed)
    share = rng.uniform(0, 1, shape)
    dark = rng.uniform(0, 1, shape) < 0.4
    fractions = np.stack([np.where(dark, 1 - share, 0), np.where(dark, share, 1 - share), np.where(dark, 0, share)])
    image = np.tensordot(MEANS.numpy(), fractions, axes=1)
    return torch.tensor(image), torch.tensor(fractions)


def test_partial_volume_fractions_invert_the_mixing_exactly():
    image, truth = mixed_image()
    mask = torch.ones(image.shape, dtype=torch.bool)
    mask[0] = False
    fractions = atlas.partial_volume_fractions(image, mask, MEANS)
    torch.testing.assert_close(fractions[:, mask], truth[:, mask], rtol=0, atol=1e-12)
    torch.testing.assert_close(fractions[:, mask].sum(0), torch.ones(int(mask.sum()), dtype=torch.float64))
    assert float(fractions[:, ~mask].abs().sum()) == 0.0


def test_partial_volume_volumes_are_unbiased_in_noise():
    image, truth = mixed_image(1, (40, 40, 40))
    noisy = image + torch.tensor(np.random.default_rng(2).normal(0, 0.004, image.shape))
    mask = torch.ones(image.shape, dtype=torch.bool)
    volumes = atlas.partial_volume_fractions(noisy, mask, MEANS).sum((1, 2, 3))
    # clipping at pure-class ends biases a little; every class volume within 2 % of the truth
    torch.testing.assert_close(volumes, truth.sum((1, 2, 3)), rtol=0.02, atol=0)


def test_class_means_ignore_prior_edges():
    prior = torch.ones(20, 20, 20, dtype=torch.uint8)
    prior[:, :, 7:14] = 2
    prior[:, :, 14:] = 3
    image = MEANS[prior.long() - 1].clone()
    image[:, :, 6:8] = 0.5 * (MEANS[0] + MEANS[1])  # partial-volume planes at the CSF/GM edge
    mask = torch.ones(prior.shape, dtype=torch.bool)
    torch.testing.assert_close(atlas.class_means(image, prior, mask), MEANS)


def test_class_means_must_be_ordered():
    with pytest.raises(ValueError, match="CSF < GM < WM"):
        atlas.partial_volume_fractions(torch.zeros(2, 2, 2), torch.ones(2, 2, 2), MEANS.flip(0))


def test_hard_labels():
    fractions = torch.zeros(3, 2, 1, 1)
    fractions[1, 0] = 0.6
    fractions[0, 0] = 0.4
    fractions[2, 1] = 1.0
    mask = torch.tensor([[[True]], [[False]]])
    assert atlas.hard_labels(fractions, mask).flatten().tolist() == [2, 0]


def test_grow_labels_only_into_unlabelled_voxels():
    regions = torch.zeros(9, 9, 9, dtype=torch.uint8)
    regions[4, 4, 4] = 3
    regions[4, 4, 6] = 5  # a neighbouring label that must not be overwritten
    grown = atlas.grow_labels(regions, (3,), radius_vox=2)
    assert int((grown == 3).sum()) == 1 + 6 + 18 - 1  # L1 ball of radius 2 has 25 voxels, one is taken by 5
    assert grown[4, 4, 6] == 5 and grown[4, 4, 5] == 3
    assert grown[4, 4, 2] == 3 and grown[4, 6, 6] == 0


def test_grow_labels_into_named_regions():
    regions = torch.zeros(7, 7, 7, dtype=torch.uint8)
    regions[3, 3, 3] = 3
    regions[3, 3, 4] = 11
    regions[3, 3, 2] = 5
    grown = atlas.grow_labels(regions, (3,), radius_vox=1, into=(0, 11))
    assert grown[3, 3, 4] == 3 and grown[3, 3, 2] == 5
