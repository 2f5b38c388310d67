"""Positive pairs of the self-supervised rules: synonym pairs and shifted views (data/pairs.py)."""

import numpy as np

from hilt.data.pairs import shifted_views, synonym_pairs


def test_synonym_pairs_pair_a_class_with_another_sample_and_negatives_with_other_classes(rng):
    y = np.repeat(np.arange(4), 5)
    x = np.arange(len(y), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    idx = rng.permutation(len(y))[:8]
    pairs = synonym_pairs(x, y, idx, rng)
    partner = pairs.second[:, 0].astype(int)
    assert (y[partner] == y[idx]).all() and (partner != idx).all()
    classes = np.concatenate([y[idx], y[idx]])
    assert (classes[pairs.negative] != classes).all()


def test_shifted_views_move_each_image_by_at_most_one_pixel(rng):
    x = np.zeros((6, 1, 8, 8), np.float32)
    x[:, 0, 3:5, 3:5] = 1
    pairs = shifted_views(x, np.arange(6), rng)
    for view in (pairs.first, pairs.second):
        assert view.sum() == x.sum()  # the blob stays inside the image
        ys, xs = np.nonzero(view[:, 0].sum(axis=0))
        assert ys.min() >= 2 and ys.max() <= 5 and xs.min() >= 2 and xs.max() <= 5
    assert not np.array_equal(pairs.first, pairs.second)
    assert list(pairs.negative) == [(i + 1) % 12 for i in range(12)]
