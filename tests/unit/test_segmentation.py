import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from dlmi import segmentation


def three_tissues(seed=0, n=(4000, 6000, 5000)):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, s, k) for m, s, k in zip((0.2, 0.55, 0.8), (0.05, 0.06, 0.04), n)])


def test_gaussian_mixture_matches_scikit_learn():
    x = three_tissues()
    weights, means, variances = segmentation.gaussian_mixture(torch.tensor(x, dtype=torch.float64))
    peer = GaussianMixture(3, tol=1e-10, max_iter=500, random_state=0).fit(x[:, None])
    order = np.argsort(peer.means_.ravel())
    np.testing.assert_allclose(means.numpy(), peer.means_.ravel()[order], rtol=1e-3)
    np.testing.assert_allclose(weights.numpy(), peer.weights_[order], rtol=1e-2)
    np.testing.assert_allclose(variances.numpy(), peer.covariances_.ravel()[order], rtol=1e-2)


def test_tissue_posteriors_classify_a_piecewise_constant_image():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 4, size=(20, 20, 20))
    image = np.choose(truth - 1, [0.2, 0.55, 0.8]) + rng.normal(0, 0.03, truth.shape)
    mask = torch.ones(truth.shape, dtype=torch.bool)
    mask[0] = False
    posteriors = segmentation.tissue_posteriors(torch.tensor(image), mask)
    assert posteriors.shape == (3, 20, 20, 20)
    torch.testing.assert_close(posteriors[:, mask].sum(0), torch.ones(int(mask.sum()), dtype=torch.float64))
    assert float(posteriors[:, ~mask].abs().sum()) == 0.0
    labels = segmentation.hard_labels(posteriors, mask).numpy()
    assert np.mean(labels[1:] == truth[1:]) > 0.999
    assert np.all(labels[0] == 0)


def test_grow_labels_only_into_unlabelled_voxels():
    regions = torch.zeros(9, 9, 9, dtype=torch.uint8)
    regions[4, 4, 4] = 3
    regions[4, 4, 6] = 5  # a neighbouring label that must not be overwritten
    grown = segmentation.grow_labels(regions, (3,), radius_vox=2)
    assert int((grown == 3).sum()) == 1 + 6 + 18 - 1  # L1 ball of radius 2 has 25 voxels, one is taken by 5
    assert grown[4, 4, 6] == 5 and grown[4, 4, 5] == 3
    assert grown[4, 4, 2] == 3 and grown[4, 6, 6] == 0


def test_grow_labels_into_named_regions():
    regions = torch.zeros(7, 7, 7, dtype=torch.uint8)
    regions[3, 3, 3] = 3
    regions[3, 3, 4] = 11
    regions[3, 3, 2] = 5
    grown = segmentation.grow_labels(regions, (3,), radius_vox=1, into=(0, 11))
    assert grown[3, 3, 4] == 3 and grown[3, 3, 2] == 5
