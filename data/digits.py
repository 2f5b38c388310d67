"""scikit-learn's real 8x8 handwritten digits, as (1, 8, 8) images in [0, 1].

The stratified 80/20 split is fixed (random_state 0) so every run and seed sees the same test set.
Recipe: MLP 64-512-10, batch 10. On noisy pulsed devices the number of updates and the width
matter more than on the exact path; the measurement behind this choice is in README.md.
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

from data.registry import Dataset


def load_digits() -> Dataset:
    bunch = datasets.load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, n_classes=10, info={"split": "stratified 80/20, random_state=0"},
                   default_hidden=512, default_batch_size=10)
