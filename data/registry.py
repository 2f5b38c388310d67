"""Dataset registry: name -> loader returning a `Dataset` of float32 arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from devices.errors import HiltError


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
    # How self-supervised rules get positive pairs (data/pairs.py): "shift" (two shifted views of
    # an image) or "synonym" (two samples of the same class: the RHM's synonymous encodings).
    pairing: str = "shift"

    def pairs(self, idx: np.ndarray, rng: np.random.Generator):
        """Two views and the negatives of the training samples `idx` (a data/pairs.py Pairs)."""
        from data.pairs import shifted_views, synonym_pairs

        if self.pairing == "synonym":
            return synonym_pairs(self.x_train, self.y_train, idx, rng)
        return shifted_views(self.x_train, idx, rng)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def default_model(self) -> str:
        return f"mlp:{int(np.prod(self.input_shape))}-{self.default_hidden}-{self.n_classes}"

    @property
    def default_encoder(self) -> str:
        """The default model of a self-supervised rule: two hidden layers, no readout."""
        n_in, h = int(np.prod(self.input_shape)), self.default_hidden
        return f"mlp:{n_in}-{h}-{h}"


def _digits(params: dict[str, str], seed: int) -> Dataset:
    from data.digits import load_digits

    if params:
        raise HiltError(f"dataset digits takes no --data-set options (got {', '.join(params)})")
    return load_digits()


def _rhm(params: dict[str, str], seed: int) -> Dataset:
    from data.rhm import RHMParams, load_rhm

    return load_rhm(RHMParams.parse(params), seed)


DATASETS: dict[str, Callable[[dict[str, str], int], Dataset]] = {"digits": _digits, "rhm": _rhm}


def load_dataset(name: str, params: list[str] | dict[str, str] | None = None, seed: int = 0) -> Dataset:
    if name not in DATASETS:
        raise HiltError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
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
    return DATASETS[name](params or {}, seed)
