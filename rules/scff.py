"""Self-contrastive Forward-Forward (Chen, Liu, Laydevant & Grollier, "Self-contrastive forward-
forward algorithm", Nat. Commun. 16, 5978, 2025), self-supervised, on crossbar primitives:
forward reads only, one per layer and batch.

Every layer k reads its input x̂ (standardised per sample: zero mean, unit standard deviation over
all its values) once, y = W x̂ + b, and sees a positive and a negative made of two inputs through
the same weights: positive [x̂_n, x̂_n], negative [x̂_n, x̂_(n+r)] with one shift r per batch, so

    a_pos(n) = 2 y_n                      a_neg(n) = y_n + y_(n+r)      (the bias counted twice)

The goodness at every position (one for a dense layer, every (h, w) of a convolution) is the mean
over channels of ReLU(a)^2, and the layer's loss

    L = mean softplus(theta_pos - G_pos) + mean softplus(G_neg - theta_neg) + lam mean_n ||G_pos(n)||_2

(means over samples and positions). Its gradient with respect to y_m collects both streams,
dL/dy_m = 2 dL/da_pos(m) + dL/da_neg(m) + dL/da_neg(m - r): one pulsed update per layer with the
batch's own rows. The next layer reads pool(act(a_pos)), act the triangle (subtract the mean over
channels, then ReLU) or ReLU. The shift r is drawn from a generator seeded by the batch (resumes
are bit for bit). Scored by a linear probe on every layer's pool(act(a_pos)) (rules/probe.py).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.rules.base import Rule, Signals, batch_generator, check_finite
from hilt.rules.contrastive import PoolOption, feature_pools, parse_pool
from hilt.rules.losses import softplus
from hilt.rules.probe import ProbeReadout

EPS = 1e-10


def standardise(x):
    """Every sample of x (batch first) to zero mean and unit standard deviation over its values."""
    axes = tuple(range(1, x.ndim))
    return (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + EPS)


class SCFF(ProbeReadout, Rule):
    """Self-supervised: self-contrastive Forward-Forward (Chen et al. 2025), one forward read per layer."""

    name = "scff"

    def __init__(self, theta_pos: Annotated[float, "scff: goodness threshold of positives"] = 0.0,
                 theta_neg: Annotated[float, "scff: goodness threshold of negatives"] = 1.0,
                 lam: Annotated[float, "scff: weight of the positives' goodness norm"] = 0.001,
                 triangle: Annotated[bool, "scff: triangle activation (ReLU of the activity minus its channel mean)"] = True,
                 pool: PoolOption = None):
        super().__init__(loss=None)
        for flag, value in (("--theta-pos", theta_pos), ("--theta-neg", theta_neg)):
            if not np.isfinite(value):
                raise HiltError(f"{flag} must be a finite number (got {value})")
        if not (np.isfinite(lam) and lam >= 0):
            raise HiltError(f"--lam must be a finite number >= 0 (got {lam})")
        self.theta_pos, self.theta_neg, self.lam, self.triangle = float(theta_pos), float(theta_neg), float(lam), bool(triangle)
        self.pool = pool or "auto"

    def pools(self, net):
        """The feature pooling of every layer for the probe."""
        return feature_pools(net.shapes(), parse_pool(self.pool, len(net.blocks)))

    def act(self, a):
        """triangle: ReLU(a - mean over channels at each position); else ReLU(a)."""
        if self.triangle:
            a = a - a.mean(axis=1, keepdims=True)
        return np.maximum(a, 0)

    def layer_output(self, block, a):
        """What the next layer reads: pool(act(a)), pooled by the block's own pool."""
        s = self.act(a)
        return s if block.pool is None else block.pool.forward(s)[0]

    @staticmethod
    def shift(x) -> int:
        """The batch's negative shift r in 1..B-1, from a generator seeded by the batch."""
        return int(batch_generator(backend.asarray(x[:2])).integers(1, len(x))) if len(x) > 1 else 0

    def signals(self, net, pairs, y):
        x = backend.asarray(pairs.first)
        B, r = len(x), self.shift(x)
        if B < 2:
            raise HiltError("scff needs batches of at least 2 samples (a negative pairs two of them)")
        xp, blocks, loss, agree = backend.xp(), [], 0.0, 0.0
        s = x
        for k, block in enumerate(net.blocks, 1):
            y_k, cache = block.layer.forward(standardise(s))
            check_finite(y_k, "pre-activations", k)
            a_pos, a_neg = 2 * y_k, y_k + xp.roll(y_k, -r, axis=0)
            C = a_pos.shape[1]
            g_pos, g_neg = [(np.maximum(a, 0) ** 2).mean(axis=1) for a in (a_pos, a_neg)]
            P = g_pos[0].size  # positions per sample
            lp, dp = softplus(self.theta_pos - g_pos)
            ln, dn = softplus(g_neg - self.theta_neg)
            norm = xp.sqrt((g_pos.reshape(B, -1) ** 2).sum(axis=1))
            loss += float(lp.mean() + ln.mean() + self.lam * norm.mean())
            dG_pos = -dp / (B * P) + self.lam * g_pos / ((norm.reshape(B, *[1] * (g_pos.ndim - 1)) + EPS) * B)
            dG_neg = dn / (B * P)
            d_pos = (2 / C) * np.maximum(a_pos, 0) * xp.expand_dims(dG_pos, 1)
            d_neg = (2 / C) * np.maximum(a_neg, 0) * xp.expand_dims(dG_neg, 1)
            d_y = 2 * d_pos + d_neg + xp.roll(d_neg, r, axis=0)
            blocks.append((d_y, (cache, None)))  # the signal is at the layer's output (no pool part)
            agree += float((g_pos.reshape(B, -1).mean(axis=1) > g_neg.reshape(B, -1).mean(axis=1)).mean())
            s = self.layer_output(block, a_pos)
        n = len(net.blocks)
        return Signals({"loss_sum": loss * B, "correct": agree / n * B, "count": B}, blocks)

    def features(self, net, x) -> list[np.ndarray]:
        """Every layer's pool(act(a_pos)) of inputs x, pooled for the probe (host arrays, n x D_l)."""
        from hilt.analog.network import EVAL_BATCH

        pools, out = self.pools(net), [[] for _ in net.blocks]
        for i in range(0, len(x), EVAL_BATCH):
            s = backend.asarray(x[i : i + EVAL_BATCH])
            for k, (block, pool) in enumerate(zip(net.blocks, pools)):
                y_k, _ = block.layer.forward(standardise(s))
                s = self.layer_output(block, 2 * y_k)
                out[k].append(backend.to_numpy(pool(s)))
        return [np.concatenate(f) for f in out]
