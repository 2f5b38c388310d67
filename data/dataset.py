"""The Dataset every loader returns: float32 arrays, the dataset's training recipe, its views."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # (N, *input_shape) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)
    # The dataset's training recipe: what `train` uses when --model / --batch-size are not given.
    default_hidden: int = 256
    default_batch_size: int = 20
    default_spec: str | None = None  # a model spec other than the one-hidden-layer MLP
    # How self-supervised rules get positive pairs (data/pairs.py): "shift" (two shifted views of
    # an image), "simclr" (two SimCLR views, data/augment.py) or "synonym" (two samples of the same
    # class: the RHM's synonymous encodings).
    pairing: str = "shift"
    augment: str = "none"  # supervised training batches: "none" or "crop-flip" (data/augment.py)
    norm: tuple | None = None  # per-channel (mean, std) the images are normalised with, if any
    x_val: np.ndarray | None = None  # held out of the training set by --data-set validation=F
    y_val: np.ndarray | None = None
    x_unlabeled: np.ndarray | None = None  # images only self-supervised rules train on (STL-10's)

    @property
    def ssl_images(self) -> np.ndarray:
        """What self-supervised rules draw their views from: the unlabeled split if any, else x_train."""
        return self.x_train if self.x_unlabeled is None else self.x_unlabeled

    def validation(self) -> "Dataset":
        """This dataset with the validation set in the place of the test set (for held-out scores)."""
        return replace(self, x_test=self.x_val, y_test=self.y_val)

    def pairs(self, idx: np.ndarray, rng: np.random.Generator):
        """Two views and the negatives of the training samples `idx` (a data/pairs.py Pairs)."""
        from hilt.data.pairs import Pairs, next_row, shifted_views, synonym_pairs

        if self.pairing == "synonym":
            return synonym_pairs(self.x_train, self.y_train, idx, rng)
        if self.pairing == "simclr":
            from hilt.data.augment import simclr_view

            x = self.ssl_images[idx]
            return Pairs(simclr_view(x, rng, self.norm), simclr_view(x, rng, self.norm), next_row(2 * len(idx)))
        return shifted_views(self.ssl_images, idx, rng)

    def augmented(self, x, rng: np.random.Generator):
        """A supervised training batch after the dataset's augmentation."""
        if self.augment == "crop-flip":
            from hilt.data.augment import crop_flip

            return crop_flip(x, rng)
        return x

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-sample shape of x (C, H, W), (C, L) or (D,)."""
        return tuple(self.x_train.shape[1:])

    @property
    def default_model(self) -> str:
        """The model a run uses when --model is not given: an MLP from the input size, the hidden
        width and the classes."""
        if self.default_spec:
            return self.default_spec
        return f"mlp:{int(np.prod(self.input_shape))}-{self.default_hidden}-{self.n_classes}"

    @property
    def default_encoder(self) -> str:
        """The default model of a self-supervised rule: two hidden layers, no readout."""
        n_in, h = int(np.prod(self.input_shape)), self.default_hidden
        return f"mlp:{n_in}-{h}-{h}"
