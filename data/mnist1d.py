"""`mnist1d`: the MNIST-1D benchmark (Greydanus 2020), 40-sample signals as (1, 40), 4 000 / 1 000.

The mnist1d package generates it offline from its ten templates with its default arguments
(`make_dataset(get_dataset_args())`, seed 42, already standardised); its download path is never
called. Generating takes several seconds, so the arrays are cached under data.files.cache_dir(),
keyed by the package version. The generator seeds numpy's and python's global RNGs; their states
are restored afterwards.
"""

from __future__ import annotations

import importlib.metadata
import random

import numpy as np

from hilt.data.files import cache_dir
from hilt.errors import HiltError
from hilt.data.dataset import Dataset


def generate() -> dict[str, np.ndarray]:
    """MNIST-1D made by its package with its default arguments (the global RNG states left as they
    were)."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        ds = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": ds["x"], "y": ds["y"], "x_test": ds["x_test"], "y_test": ds["y_test"]}


def _read_cache(path) -> dict[str, np.ndarray]:
    """The cached arrays; HiltError saying to delete a damaged cache (hilt makes it again)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in ("x", "y", "x_test", "y_test")}
        ok = all(arrays[k].ndim == 2 and arrays[k].shape[1] == 40 and np.isfinite(arrays[k]).all() for k in ("x", "x_test")) \
            and all(arrays[k].ndim == 1 and len(arrays[k]) == len(arrays[x]) and ((arrays[k] >= 0) & (arrays[k] < 10)).all()
                    for k, x in (("y", "x"), ("y_test", "x_test")))
    except Exception as err:  # not a zip, a member missing or cut off, an object array
        ok, why = False, f"{type(err).__name__}: {err}".splitlines()[0]
    else:
        why = "arrays of the wrong shape or values"
    if not ok:
        raise HiltError(f"the MNIST-1D cache {path} is damaged ({why}); delete it and hilt makes it again")
    return arrays


def load_mnist1d() -> Dataset:
    """MNIST-1D: (N, 1, 40) float32 sequences, 10 classes, cached on disk after the first call."""
    path = cache_dir() / f"mnist1d-{importlib.metadata.version('mnist1d')}-default.npz"
    if path.is_file():
        arrays = _read_cache(path)
    else:
        arrays = generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(f".{np.random.default_rng().integers(1 << 30)}.tmp.npz")
        np.savez(part, **arrays)
        part.replace(path)  # atomic: concurrent runs never read half a file
    x, x_test = (arrays[k][:, None, :].astype(np.float32) for k in ("x", "x_test"))
    return Dataset("mnist1d", x, arrays["y"].astype(np.int64), x_test, arrays["y_test"].astype(np.int64),
                   n_classes=10, info={"source": "mnist1d make_dataset(get_dataset_args())"},
                   default_spec="mlp:40-100-100-10", default_batch_size=100)
