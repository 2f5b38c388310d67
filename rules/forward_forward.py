"""Forward-Forward (Hinton 2022, "The Forward-Forward algorithm: some preliminary investigations",
arXiv 2212.13345) on crossbar primitives: forward reads only.

`negatives=label` (supervised, the default): the label joins the input: a sample x (flattened, D
values) with label c is read as [x, onehot(c)] (D + n_classes inputs). A positive is the sample
with its own label, a negative the same sample with a wrong label (drawn uniformly among the
others). `negatives=hybrid` (self-supervised): positives are the images themselves, negatives
Hinton's hybrid images m x_a + (1 - m) x_b of two images of the batch, with a mask m made from
random bits blurred `BLUR_ROUNDS` times by [1/4, 1/2, 1/4] along every image axis and thresholded at
0.5 (large regions from each image: the short-range statistics of an image, the long-range shapes
of none); it is scored by a linear probe of every layer's normalised activity, as the
self-supervised rules. Every layer k of an MLP (no readout layer) is trained on its own:

    a_k = W_k x̂_{k-1}             forward read (x̂_0 = the input, positives and negatives stacked)
    h_k = rho(a_k),   G_k = sum_j h_kj^2                          goodness, per sample
    L_k = mean_batch softplus(theta - G_k(pos)) + softplus(G_k(neg) - theta)
    x̂_k = h_k / (||h_k|| + 1e-8)   only the direction goes up; the next layer's input is held fixed
    g_k = dL_k/da_k = dL_k/dG_k * 2 h_k * rho'(a_k)      W_k <- W_k - lr sum_rows g_k x̂_{k-1}^T

No transposed read is made. The negatives (labels, or masks and partners) are drawn from a generator
seeded by the batch itself, so a resumed run draws the same ones as an uninterrupted run. With
labels, `predict` reads every sample once per class, [x, onehot(c)] for c = 1..n_classes, and scores
c by the goodness summed over the layers from `score_from` up (n_classes x layers forward reads per
sample, counted as evaluation reads).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.rules.base import NetworkPlan, Rule, Signals, batch_generator, check_finite
from hilt.rules.contrastive import feature_pools
from hilt.rules.losses import one_hot, softplus
from hilt.rules.probe import ProbeReadout

EPS = 1e-8
NEGATIVES = ("label", "hybrid")
BLUR_ROUNDS = 6


def hybrid_masks(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """One mask per sample of `shape` (batch first; channels, if any, share it): random bits blurred
    BLUR_ROUNDS times by [1/4, 1/2, 1/4] along every axis after the channel one, then > 0.5."""
    spatial = shape[2:] if len(shape) > 2 else shape[1:]
    m = rng.integers(0, 2, size=(shape[0], *spatial)).astype(np.float32)
    for _ in range(BLUR_ROUNDS):
        for axis in range(1, m.ndim):
            padded = np.concatenate([np.take(m, [0], axis), m, np.take(m, [-1], axis)], axis=axis)
            n = m.shape[axis]
            m = (0.25 * np.take(padded, range(0, n), axis) + 0.5 * np.take(padded, range(1, n + 1), axis)
                 + 0.25 * np.take(padded, range(2, n + 2), axis))
    m = (m > 0.5).astype(np.float32)
    return m[:, None] if len(shape) > 2 else m


class ForwardForward(ProbeReadout, Rule):
    """Forward-Forward (Hinton 2022): per-layer goodness of positives and negatives, forward reads only."""

    name = "ff"

    def __init__(self, theta: Annotated[float, "goodness threshold theta (sum of squared activities)"] = 2.0,
                 score_from: Annotated[int, "predict: goodness summed over layers score_from..L (1-based)"] = 1,
                 negatives: Annotated[str, "label (supervised: wrong labels) | hybrid (self-supervised: "
                                           "hybrid images, scored by a linear probe)"] = "label"):
        super().__init__(loss=None)
        if negatives not in NEGATIVES:
            raise HiltError(f"--negatives {negatives!r}: allowed: {', '.join(NEGATIVES)}")
        self.negatives = negatives
        self.self_supervised = negatives == "hybrid"
        if not (np.isfinite(theta) and theta >= 0):
            raise HiltError(f"--theta must be a finite number >= 0 (got {theta})")
        if score_from < 1:
            raise HiltError(f"--score-from must be >= 1 (got {score_from})")
        self.theta, self.score_from = float(theta), int(score_from)

    def network_plan(self, data) -> NetworkPlan:
        """An MLP without readout reading [x, onehot(label)] (D + n_classes inputs), or the images
        themselves with hybrid negatives."""
        n_in, h = int(np.prod(data.input_shape)) + (0 if self.self_supervised else data.n_classes), data.default_hidden
        return NetworkPlan((n_in,), False, f"mlp:{n_in}-{h}-{h}", model_kinds=("mlp",))

    def attach(self, net, make_crossbar, rng) -> None:
        """No crossbars of its own (MLPs only: a convolution would need the label in a channel of its own)."""
        if self.score_from > len(net.blocks):
            raise HiltError(f"--score-from {self.score_from}: the network has {len(net.blocks)} layers")

    def reference(self):
        """FF has no output loss to backpropagate: its alignment reference is itself."""
        return self

    @staticmethod
    def labelled(x, labels, n_classes: int):
        """[x flattened, onehot(labels)]: (batch x (D + n_classes)) float32."""
        xp = backend.xp()
        flat = backend.asarray(x).reshape(len(x), -1)
        return xp.concatenate([flat, one_hot(labels, n_classes)], axis=1)

    @staticmethod
    def wrong_labels(x, y, n_classes: int) -> np.ndarray:
        """A wrong label per sample, uniform among the others, drawn from a generator seeded by the
        batch (its labels and first row): the same batch always gets the same negatives."""
        y = backend.to_numpy(y).astype(np.int64)
        shift = batch_generator(y, backend.asarray(x[:1])).integers(1, n_classes, size=len(y))
        return (y + shift) % n_classes

    def goodness_trace(self, net, x0):
        """Per layer: (a_k, read cache, h_k, G_k) for input rows x0, each layer reading the
        normalised activity of the one below."""
        xp, trace, s = backend.xp(), [], x0
        for k, block in enumerate(net.blocks, 1):
            a, cache = block.forward(s)
            check_finite(a, "pre-activations", k)
            h = block.act(a)
            trace.append((a, cache, h, (h * h).sum(axis=1)))
            s = h / (xp.sqrt((h * h).sum(axis=1, keepdims=True)) + EPS)
        return trace

    @staticmethod
    def hybrids(x) -> "np.ndarray":
        """Hybrid negatives of the images x (host arrays, batch first): m x + (1 - m) x[partner]."""
        x = np.asarray(backend.to_numpy(x))
        rng = batch_generator(x[:2])
        partner = (np.arange(len(x)) + rng.integers(1, max(len(x), 2), size=len(x))) % len(x)
        m = hybrid_masks(x.shape, rng)
        return m * x + (1 - m) * x[partner]

    def signals(self, net, x, y):
        if self.self_supervised:
            images = x.first  # host or device views; flat() and hybrids() convert
            B = len(images)
            flat = lambda a: backend.asarray(a).reshape(len(a), -1)  # noqa: E731
            x0 = backend.xp().concatenate([flat(images), flat(self.hybrids(images))])
        else:
            n_classes, B = self._n_classes(net, x), len(x)
            x0 = backend.xp().concatenate([self.labelled(x, y, n_classes),
                                           self.labelled(x, self.wrong_labels(x, y, n_classes), n_classes)])
        blocks, loss, xp = [], 0.0, backend.xp()
        g_pos_total = xp.zeros(B, dtype=backend.DTYPE)
        g_neg_total = xp.zeros(B, dtype=backend.DTYPE)
        for block, (a, cache, h, G) in zip(net.blocks, self.goodness_trace(net, x0)):
            lp, dp = softplus(self.theta - G[:B])
            ln, dn = softplus(G[B:] - self.theta)
            loss += float((lp.sum() + ln.sum()) / B)
            dL_dG = xp.concatenate([-dp, dn]) / B
            blocks.append((dL_dG[:, None] * 2 * h * block.act.deriv(a), cache))
            g_pos_total, g_neg_total = g_pos_total + G[:B], g_neg_total + G[B:]
        correct = int(backend.to_numpy((g_pos_total > g_neg_total).sum()))
        return Signals({"loss_sum": loss * B, "correct": correct, "count": B}, blocks)

    def _n_classes(self, net, x) -> int:
        """The classes: the network's inputs minus a sample's values."""
        return net.blocks[0].crossbar.in_size - int(np.prod(x.shape[1:]))

    def pools(self, net):
        """The probe reads every layer's normalised activity as it is (hybrid negatives)."""
        return feature_pools(net.shapes(), [None] * len(net.blocks))

    def features(self, net, x) -> list:
        """Every layer's normalised activity of inputs x (host arrays, n x width), for the probe."""
        from hilt.analog.network import EVAL_BATCH

        out = [[] for _ in net.blocks]
        for i in range(0, len(x), EVAL_BATCH):
            rows = backend.asarray(x[i : i + EVAL_BATCH]).reshape(len(x[i : i + EVAL_BATCH]), -1)
            for k, (*_, h, _) in enumerate(self.goodness_trace(net, rows)):
                out[k].append(backend.to_numpy(h / (backend.xp().sqrt((h * h).sum(axis=1, keepdims=True)) + EPS)))
        return [np.concatenate(f) for f in out]

    def fit_readout(self, net, data) -> None:
        """With hybrid negatives, the linear probe (ProbeReadout); with labels, nothing to fit."""
        if self.self_supervised:
            super().fit_readout(net, data)

    def predict(self, net, x):
        """With labels: goodness summed over layers score_from..L of [x, onehot(c)], for every
        class c. With hybrid negatives: the probe's logits."""
        if self.self_supervised:
            return super().predict(net, x)
        n_classes = self._n_classes(net, x)
        xp = backend.xp()
        scores = xp.zeros((len(x), n_classes), dtype=backend.DTYPE)
        for c in range(n_classes):
            trace = self.goodness_trace(net, self.labelled(x, np.full(len(x), c), n_classes))
            scores[:, c] = sum(G for *_, G in trace[self.score_from - 1:])
        return scores
