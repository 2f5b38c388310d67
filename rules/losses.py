"""Output losses per sample, with their gradient with respect to the output pre-activation."""

from __future__ import annotations

import numpy as np

from hilt.analog import backend


def one_hot(y, n: int):
    """(batch x n) float32 rows with a 1 at each label y."""
    xp = backend.xp()
    return (xp.asarray(y)[:, None] == xp.arange(n)[None, :]).astype(backend.DTYPE)


def softmax(a):
    """Row-wise softmax of a (batch x classes), shifted by the row's max."""
    xp = backend.xp()
    e = xp.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(a, y):
    """Summed softmax cross-entropy over the batch, and d/da per sample (softmax - onehot)."""
    xp = backend.xp()
    p = softmax(a)
    rows, labels = xp.arange(len(a)), xp.asarray(y)
    loss = -float(xp.log(xp.maximum(p[rows, labels], 1e-30)).sum())  # the one-hot target picks one p per row
    p[rows, labels] -= 1.0
    return loss, p


def squared_error(a, y):
    """Summed 1/2 ||a - onehot||^2 over the batch, and d/da per sample (a - onehot)."""
    diff = a - one_hot(y, a.shape[1])
    return 0.5 * float((diff * diff).sum()), diff


LOSSES = {"ce": cross_entropy, "mse": squared_error}


def softplus(x):
    """softplus(x) = log(1 + e^x) and its derivative sigmoid(x), elementwise (NumPy's functions,
    which dispatch to CuPy for CuPy arrays)."""
    return np.logaddexp(0, x), 0.5 * (1 + np.tanh(0.5 * x))
