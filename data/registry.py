"""Dataset registry: name -> loader returning a `Dataset` of float32 arrays."""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Callable

import numpy as np

from hilt.data.dataset import Dataset
from hilt.data.disk import FORMATS
from hilt.errors import HiltError
from hilt.keyvalue import parse_items
from hilt.seeds import stream


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
ON_DISK = tuple(FORMATS)  # read from --data-dir
DATASETS = (*EMBEDDED, *ON_DISK)


def load_dataset(name: str, params: list[str] | dict[str, str] | None = None, seed: int = 0,
                 data_dir: str | None = None, download: bool = False) -> Dataset:
    """The dataset `name` with its --data-set options; the ON_DISK ones are read from data_dir
    (fetched there first with `download` when missing)."""
    if name not in DATASETS:
        raise HiltError(f"unknown dataset {name!r}; allowed: {', '.join(EMBEDDED)} (embedded), "
                        f"{', '.join(ON_DISK)} (from --data-dir)")
    if isinstance(params, list):
        params = parse_items("--data-set", params, expected="key=value")
    params = dict(params or {})
    augment, views = params.pop("augment", "none"), params.pop("views", None)
    fraction = params.pop("validation", None)
    if name in ON_DISK:
        from hilt.data.disk import load_from_disk

        data = load_from_disk(name, params, data_dir, download)
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
    is_val[stream(seed, "validation_split").permutation(n)[:n_val]] = True
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
