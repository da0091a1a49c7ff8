"""A 3D convolutional network that classifies whole images, as a scikit-learn estimator, so that it runs
through the same splits, nested CV, spy, bootstrap CIs and tables as the classical models.

The network is MONAI's `Classifier` (strided convolutions, instance normalisation, PReLU, dropout, then one
linear output: the logit of the positive class). Rows of the design matrix are images flattened in C order
of `image_shape` (dlmi.analysis.images). Everything the fit learns comes from the rows it is given: the
intensity scaling (`ImageScaler`, a pipeline step behind the spy), the weights and the epoch to stop at
(early stopping on a stratified validation part of those rows). Deterministic on the CPU for a given seed.
"""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
from monai.networks.nets import Classifier
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

LOG = logging.getLogger(__name__)


class ImageScaler(TransformerMixin, BaseEstimator):
    """Standardise images by the mean and SD of every value of the training images (two numbers, not one per
    voxel: a voxel's SD over a dozen subjects is too noisy to divide by)."""

    def fit(self, features, labels=None):
        values = np.asarray(features, np.float64)
        self.mean_, self.scale_ = float(values.mean()), float(values.std()) or 1.0
        return self

    def transform(self, features):
        return ((np.asarray(features, np.float64) - self.mean_) / self.scale_).astype(np.float32)


class CnnClassifier(ClassifierMixin, BaseEstimator):
    """Binary image classifier: MONAI's 3D `Classifier` trained with the class-balanced logistic loss (Adam).

    image_shape: (X, Y, Z) of the flattened rows; channels: feature maps per level, each level halving the
    grid (stride 2; as many levels as leave at least 2 voxels per axis); dropout before the output layer; epochs: the most passes over the training images;
    batch_size; learning_rate and weight_decay of Adam; validation_fraction: the stratified share of the
    rows held out for early stopping (the weights of the epoch with the lowest validation loss are kept; no
    hold-out where a class has fewer than 2 rows to give, then the last epoch's are); patience: epochs
    without a better validation loss before stopping; augment: each training image is mirrored left-right
    with probability 1/2 and shifted by up to `shift` voxels per axis; seed: weights, batches,
    augmentation and the hold-out; device: "cpu" or "cuda".
    """

    def __init__(self, image_shape=(16, 16, 16), channels=(8, 16, 32, 64), dropout=0.2, epochs=40, batch_size=8,
                 learning_rate=1e-3, weight_decay=1e-4, validation_fraction=0.2, patience=10, augment=True,
                 shift=2, seed=0, device="cpu"):
        self.image_shape = image_shape
        self.channels = channels
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.shift = shift
        self.seed = seed
        self.device = device

    def _images(self, features) -> torch.Tensor:
        rows = np.asarray(features, np.float32)
        return torch.from_numpy(rows.reshape(len(rows), 1, *self.image_shape)).to(self.device)

    def _network(self) -> Classifier:
        # a level halves the grid; keep at least 2 voxels per axis after the last (instance normalisation
        # needs more than one), so a small image gets the first levels of `channels` only
        levels = max(1, min(len(self.channels), int(np.log2(min(self.image_shape) / 2))))
        channels = tuple(int(c) for c in self.channels[:levels])
        return Classifier(in_shape=(1, *self.image_shape), classes=1, channels=channels,
                          strides=(2,) * len(channels), dropout=self.dropout).to(self.device)

    def _augmented(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.augment:
            return images
        out = images.clone()
        flip = torch.rand(len(out), generator=generator) < 0.5
        out[flip] = out[flip].flip(2)  # axis 2 of (N, C, X, Y, Z): left-right in RAS+ voxel order
        for k in range(len(out)):
            shifts = torch.randint(-self.shift, self.shift + 1, (3,), generator=generator).tolist()
            out[k] = out[k].roll(shifts, dims=(1, 2, 3))
        return out

    def fit(self, features, labels):
        labels = np.asarray(labels).astype(int)
        self.classes_ = np.array([0, 1])
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        train, held_out = self._hold_out(labels)
        images, targets = self._images(features), torch.tensor(labels, dtype=torch.float32, device=self.device)
        network = self._network()
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        positives = max(1, int(labels[train].sum()))
        loss_of = torch.nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor((len(train) - positives) / positives, device=self.device))
        self.history_, best, waited = [], (np.inf, None, 0), 0
        for epoch in range(1, self.epochs + 1):
            network.train()
            order = torch.randperm(len(train), generator=generator).numpy()
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                batch = train[order[start:start + self.batch_size]]
                optimiser.zero_grad()
                loss = loss_of(network(self._augmented(images[batch], generator))[:, 0], targets[batch])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
            validation = self._loss(network, loss_of, images[held_out], targets[held_out]) if len(held_out) else np.nan
            self.history_.append((epoch, total / len(train), validation))
            LOG.info("epoch %d: training loss %.4f, validation loss %.4f", epoch, total / len(train), validation)
            if len(held_out) and validation < best[0]:
                best, waited = (validation, copy.deepcopy(network.state_dict()), epoch), 0
            elif len(held_out):
                waited += 1
                if waited >= self.patience:
                    break
        if best[1] is not None:
            network.load_state_dict(best[1])
        self.best_epoch_ = best[2] if best[1] is not None else len(self.history_)
        LOG.info("kept the weights of epoch %d of %d", self.best_epoch_, len(self.history_))
        self.network_ = network.eval()
        return self

    def _hold_out(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(training, validation) positions of a stratified split holding out validation_fraction of the rows
        (rounded up, and at least one per class); no validation part where a class has fewer than 2 rows or
        validation_fraction is 0."""
        rows = np.arange(len(labels))
        if self.validation_fraction <= 0 or min(np.bincount(labels, minlength=2)) < 2:
            return rows, rows[:0]
        held = max(2, math.ceil(self.validation_fraction * len(rows)))
        train, held_out = train_test_split(rows, test_size=held, stratify=labels, random_state=self.seed)
        return np.sort(train), np.sort(held_out)

    @staticmethod
    @torch.no_grad()
    def _loss(network, loss_of, images, targets) -> float:
        network.eval()
        return float(loss_of(network(images)[:, 0], targets))

    @torch.no_grad()
    def decision_function(self, features) -> np.ndarray:
        """The logit of the positive class for each row (> 0: positive)."""
        images = self._images(features)
        return np.concatenate([self.network_(images[k:k + self.batch_size])[:, 0].cpu().numpy()
                               for k in range(0, len(images), self.batch_size)]).astype(np.float64)

    def predict(self, features) -> np.ndarray:
        return (self.decision_function(features) > 0).astype(int)


def pipeline(model: str, seed: int, *, image_shape, device: str = "cpu", spy=None) -> Pipeline:
    """The image model's Pipeline, as dlmi.analysis.models.pipeline builds the classical ones: ("spy", spy)
    when given (dlmi.analysis.validation.SubjectSpy, which then sees every fit's rows), ("scale",
    ImageScaler), ("estimator", CnnClassifier on `image_shape` and `device`)."""
    if model != "cnn":
        raise ValueError(f"unknown image model {model!r} (dlmi.analysis.cnn knows cnn)")
    steps = [("spy", spy)] if spy is not None else []
    steps += [("scale", ImageScaler()),
              ("estimator", CnnClassifier(image_shape=tuple(image_shape), seed=seed, device=device))]
    return Pipeline(steps)
