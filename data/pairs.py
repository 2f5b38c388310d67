"""Positive pairs and negatives for self-supervised rules (Wu et al. 2026; Delrocq et al. 2026 on the RHM).

A batch of B anchors gives two views of each, `first` and `second` (B rows each). The rules stack
them as [first; second] and score every row against its partner view; `negative[i]` is the row of
that stack whose view is row i's negative (CLAPP++ scores the swapped stack too; the rules map).

- `shifted_views` (images, e.g. digits): each view is the image shifted by up to `shift` pixels in
  each direction with zero fill (a random crop of the zero-padded image). Negative: the next row
  (B5), always another image.
- `synonym_pairs` (RHM): the second view is another training sample of the same class, i.e. a
  different encoding of the same top-level object; the negative is a row of another class.
  Labels only form the pairs; they never enter the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    first: np.ndarray  # (B, *input_shape)
    second: np.ndarray  # (B, *input_shape)
    negative: np.ndarray  # (2B,) int: row of [first; second] that is row i's negative

    def __len__(self) -> int:
        return len(self.first)

    def stacked(self) -> np.ndarray:
        """[first; second]: the two views stacked, (2B, ...)."""
        return np.concatenate([self.first, self.second])


def next_row(n_rows: int) -> np.ndarray:
    """Each row's negative: the next row (cyclically) of n_rows."""
    return (np.arange(n_rows) + 1) % n_rows


def shift(x: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Every image of (B, C, H, W) moved by its own random (dy, dx) in [-max_shift, max_shift]^2."""
    B, _, H, W = x.shape
    p = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dy, dx = rng.integers(0, 2 * p + 1, size=(2, B))
    out = np.empty_like(x)
    for i in range(B):
        out[i] = padded[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W]
    return out


def shifted_views(x: np.ndarray, idx: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> Pairs:
    """Two shifted views (up to max_shift pixels, zero fill) of the images x[idx]; negatives the
    next row."""
    anchors = x[idx]
    return Pairs(shift(anchors, rng, max_shift), shift(anchors, rng, max_shift), next_row(2 * len(idx)))


def synonym_pairs(x: np.ndarray, y: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Pairs:
    """Partner: another sample of the anchor's class (itself only when its class has one sample).
    Negative: a uniformly drawn row of another class (the next row if the batch has one class)."""
    partner = np.empty(len(idx), dtype=np.int64)
    for c in np.unique(y[idx]):
        members = np.flatnonzero(y == c)
        rows = np.flatnonzero(y[idx] == c)
        if len(members) == 1:
            partner[rows] = members[0]
            continue
        # a uniform draw among the class's other members: draw from n-1 and skip the anchor itself
        pos = np.searchsorted(members, idx[rows])
        draw = rng.integers(0, len(members) - 1, size=len(rows))
        partner[rows] = members[draw + (draw >= pos)]
    classes = np.concatenate([y[idx], y[idx]])
    negative = next_row(len(classes))
    for i in range(len(classes)):
        others = np.flatnonzero(classes != classes[i])
        if len(others):
            negative[i] = others[rng.integers(len(others))]
    return Pairs(x[idx], x[partner], negative)
