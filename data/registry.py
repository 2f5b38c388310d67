"""Dataset registry: name -> loader returning a `Dataset` of float32 arrays."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from hilt.devices.errors import HiltError


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
        return tuple(self.x_train.shape[1:])

    @property
    def default_model(self) -> str:
        if self.default_spec:
            return self.default_spec
        return f"mlp:{int(np.prod(self.input_shape))}-{self.default_hidden}-{self.n_classes}"

    @property
    def default_encoder(self) -> str:
        """The default model of a self-supervised rule: two hidden layers, no readout."""
        n_in, h = int(np.prod(self.input_shape)), self.default_hidden
        return f"mlp:{n_in}-{h}-{h}"


def _without_options(name: str, module: str, loader: str) -> Callable[[dict[str, str], int], Dataset]:
    """The loader of a fixed dataset (no --data-set options): module.loader(), imported when used."""

    def load(params: dict[str, str], seed: int) -> Dataset:
        if params:
            raise HiltError(f"dataset {name} takes no --data-set options (got {', '.join(params)})")
        return getattr(importlib.import_module(module), loader)()

    return load


def _rhm(params: dict[str, str], seed: int) -> Dataset:
    from hilt.data.rhm import RHMParams, load_rhm

    return load_rhm(RHMParams.parse(params), seed)


EMBEDDED: dict[str, Callable[[dict[str, str], int], Dataset]] = {
    "digits": _without_options("digits", "hilt.data.digits", "load_digits"),
    "rhm": _rhm,
    "mnist5k": _without_options("mnist5k", "hilt.data.mnist5k", "load_mnist5k"),
    "mnist1d": _without_options("mnist1d", "hilt.data.mnist1d", "load_mnist1d"),
}
ON_DISK = ("mnist", "fashion-mnist", "cifar10", "cifar100", "stl10", "tiny-imagenet")  # data/disk.py
DATASETS = (*EMBEDDED, *ON_DISK)


def load_dataset(name: str, params: list[str] | dict[str, str] | None = None, seed: int = 0,
                 data_dir: str | None = None) -> Dataset:
    """The dataset `name` with its --data-set options; the ON_DISK ones are read from data_dir."""
    if name not in DATASETS:
        raise HiltError(f"unknown dataset {name!r}; allowed: {', '.join(EMBEDDED)} (embedded), "
                        f"{', '.join(ON_DISK)} (from --data-dir)")
    if isinstance(params, list):
        parsed = {}
        for item in params:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise HiltError(f"--data-set {item!r}: expected key=value")
            if key in parsed:
                raise HiltError(f"--data-set {key} is given twice; give each key once")
            parsed[key] = value.strip()
        params = parsed
    params = dict(params or {})
    augment, views = params.pop("augment", "none"), params.pop("views", None)
    fraction = params.pop("validation", None)
    if name in ON_DISK:
        from hilt.data.disk import load_from_disk

        data = load_from_disk(name, params, data_dir)
    else:
        data = EMBEDDED[name](params, seed)
    data = _with_augmentation(data, augment, views)
    return data if fraction is None else _hold_out(data, fraction, seed)


def _hold_out(data: Dataset, text: str, seed: int) -> Dataset:
    """--data-set validation=F: a random fraction F of the training set (drawn from the run's seed)
    becomes the validation set; the rest stays the training set, in its order."""
    try:
        fraction = float(text)
    except ValueError:
        fraction = float("nan")
    n = len(data.x_train)
    n_val = int(round(fraction * n)) if 0 < fraction < 1 else 0
    if not 0 < n_val < n:
        raise HiltError(f"--data-set validation={text}: expected a fraction in (0, 1) that leaves both sets non-empty "
                        f"({n} training samples)")
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng((seed, 2)).permutation(n)[:n_val]] = True
    return replace(data, x_train=data.x_train[~is_val], y_train=data.y_train[~is_val],
                   x_val=data.x_train[is_val], y_val=data.y_train[is_val], info={**data.info, "validation": fraction})


def _with_augmentation(data: Dataset, augment: str, views: str | None) -> Dataset:
    """--data-set augment=none|crop-flip and views=shift|simclr, checked against the data."""
    from hilt.data.augment import AUGMENTS

    images = len(data.input_shape) == 3
    if augment not in AUGMENTS or (augment != "none" and not images):
        allowed = ", ".join(AUGMENTS) if images else "none (it is not image data)"
        raise HiltError(f"--data-set augment={augment}: allowed for {data.name}: {allowed}")
    if views is not None:
        allowed = ("shift", "simclr") if images and data.input_shape[0] == 3 else ("shift",) if images else ()
        if views not in allowed:
            raise HiltError(f"--data-set views={views}: allowed for {data.name}: "
                            f"{', '.join(allowed) or 'none (its pairs are synonyms)'}")
    return replace(data, augment=augment, pairing=views or data.pairing)
