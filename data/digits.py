"""scikit-learn's real 8x8 handwritten digits, as (1, 8, 8) images in [0, 1].

The split is scikit-learn's stratified 80/20 `train_test_split(..., stratify=y, random_state=0)`,
stored as indices in digits_split.npz, and the images are read from the file that ships inside
scikit-learn (datasets/data/digits.csv.gz) without importing scikit-learn, which costs ~0.7 s of
start-up (tests/test_bp.py checks both against scikit-learn itself).
Recipe: MLP 64-512-10, batch 10. On noisy pulsed devices the number of updates and the width
matter more than on the exact path; the measurement behind this choice is in README.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hilt.data.files import installed_file
from hilt.data.dataset import Dataset

SPLIT = Path(__file__).with_name("digits_split.npz")


def load_digits() -> Dataset:
    """scikit-learn's 8 x 8 digits, split as shipped (digits_split.npz), scaled to [0, 1]: (N, 1, 8,
    8) float32."""
    table = np.loadtxt(installed_file("sklearn", "datasets", "data", "digits.csv.gz"), delimiter=",")
    x = (table[:, :-1].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)  # (1797, 1, 8, 8)
    y = table[:, -1].astype(np.int64)
    split = np.load(SPLIT)
    tr, te = split["train"].astype(np.int64), split["test"].astype(np.int64)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], n_classes=10,
                   info={"split": "stratified 80/20, scikit-learn train_test_split random_state=0"},
                   default_hidden=512, default_batch_size=10)
