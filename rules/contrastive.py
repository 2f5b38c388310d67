"""The contrastive local loss shared by the CLAPP family and its baselines (Wu et al. 2026, §3 and Table 1).

A layer's activity s^l is pooled into features p^l = flatten(AvgPool_k(s^l)) (`FeaturePool`;
global average without spatial dependence). The rows of a batch are the stacked views
[first; second] (data/pairs.py): context row i is scored against its partner view (the positive)
and against `negative[i]`:

    u_pos[i] = p[partner(i)]^T B c[i]      u_neg[i] = p[negative(i)]^T B c[i]
    L = (1/n) sum_i  f(u_pos[i]) + f(-u_neg[i])                         (type 2, n context rows)

with f = hinge max(0, 1 - x), softplus log(1 + e^-x) or linear -x. With s_pos = f'(u_pos)/n and
s_neg = -f'(-u_neg)/n:

    dL/dB          = sum_i d_i c_i^T,   d_i = s_pos[i] p[partner(i)] + s_neg[i] p[negative(i)]
    dL/dp[j]       = sum over the rows i that use p[j]: s_pos[i] (B c_i) or s_neg[i] (B c_i)
    dL/dc[i]       = B^T d_i               (retrodiction; only when the context is not detached)

B c is one forward read of B, B^T d one transposed read (masked where that forward read
saturated, as every transposed read), and dL/dB one pulsed update with d.

Also here, as the self-supervised rules' shared floor: ContrastiveRule (options, feature pools,
the stacked rows of a batch, metrics) and the backprop baselines. bp_clapp_pp (Wu et al. 2026's BP baseline) puts
the loss at the top layer only, globally pooled by default, and backpropagates it through all
layers with transposed reads; bp_infonce does the same with the InfoNCE loss on a shared
projection head P (a crossbar like B). Their top objective is what clapp_dfa and clapp_pc send
down by other means (rules/dfa.py, rules/pc.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from hilt.analog import backend
from hilt.analog.network import init_crossbar
from hilt.analog.periphery import AvgPool2d
from hilt.errors import HiltError
from hilt.rules.base import Rule, Signals
from hilt.rules.bp import backpropagate, forward_trace
from hilt.rules.probe import ProbeReadout

# The options the contrastive rules share (their types and one-line docs).
ContrastOption = Annotated[str, "f of the score: hinge | softplus | linear"]
PoolOption = Annotated[str | None, "feature pooling per layer: auto | global | kernels such as 2-2-1 (default: the rule's)"]


# NumPy's functions on purpose: they dispatch to CuPy for CuPy arrays (__array_ufunc__,
# __array_function__) and keep the input's dtype (float32 in the rules, float64 in the theory checks).
def _hinge(x):
    return np.maximum(0, 1 - x), -(x < 1).astype(x.dtype)


def _softplus(x):
    return np.logaddexp(0, -x), -0.5 * (1 - np.tanh(0.5 * x))  # d/dx log(1 + e^-x) = -sigmoid(-x)


def _linear(x):
    return -x, -np.ones_like(x)


# f(x) and f'(x) of the decreasing function of the score
CONTRAST_F = {"hinge": _hinge, "softplus": _softplus, "linear": _linear}


class FeaturePool:
    """p = flatten(AvgPool_kernel(s)) per sample, C-major; kernel None: the global mean over positions.
    Dense activity (D,) passes unchanged; 1-D activity (C, n) is flattened (kernel 1) or averaged."""

    def __init__(self, shape: tuple[int, ...], kernel: int | None):
        self.shape, self.kernel = tuple(shape), kernel
        if len(shape) == 3 and kernel is not None:
            if not 1 <= kernel <= min(shape[1:]):
                raise HiltError(f"pool kernel {kernel} does not fit a {shape[1]}x{shape[2]} feature map")
            self.pool = AvgPool2d(kernel)
        elif len(shape) == 2 and kernel not in (None, 1):
            raise HiltError(f"pool kernel {kernel}: 1-D activity is flattened (1) or averaged (global)")

    @property
    def dim(self) -> int:
        """The number of features p per sample after pooling."""
        if len(self.shape) == 1:
            return self.shape[0]
        if self.kernel is None:
            return self.shape[0]
        if len(self.shape) == 2:
            return self.shape[0] * self.shape[1]
        C, H, W = self.shape
        return C * (H // self.kernel) * (W // self.kernel)

    def __call__(self, s):
        n = s.shape[0]
        if len(self.shape) == 1:
            return s
        if self.kernel is None:
            return s.reshape(n, self.shape[0], -1).mean(axis=2)
        if len(self.shape) == 2:
            return s.reshape(n, -1)
        return self.pool.forward(s)[0].reshape(n, -1)

    def backward(self, g):
        """dL/ds from dL/dp."""
        xp = backend.xp()
        n = g.shape[0]
        if len(self.shape) == 1:
            return g
        if self.kernel is None:
            positions = int(np.prod(self.shape[1:]))
            return xp.broadcast_to(g.reshape(n, self.shape[0], *[1] * (len(self.shape) - 1)) / positions,
                                   (n, *self.shape)).copy()
        if len(self.shape) == 2:
            return g.reshape(n, *self.shape)
        C, H, W = self.shape
        k = self.kernel
        return self.pool.backward(g.reshape(n, C, H // k, W // k), (n, *self.shape))


def parse_pool(text: str | None, n_layers: int) -> list[int | None]:
    """'auto' (None), 'global', or per-layer kernels '4-4-2' -> kernel per layer (None = global;
    'auto' is resolved per shape by `feature_pools`)."""
    if text in (None, "auto"):
        return ["auto"] * n_layers
    if text == "global":
        return [None] * n_layers
    if not re.fullmatch(r"\d+(-\d+)*", text) or len(text.split("-")) != n_layers:
        raise HiltError(f"--pool {text!r}: expected auto, global, or one kernel per layer ({n_layers}), e.g. "
                        + "-".join(["2"] * n_layers))
    return [int(k) for k in text.split("-")]


def feature_pools(shapes: list[tuple[int, ...]], kernels: list) -> list[FeaturePool]:
    """'auto': feature maps larger than 4x4 are pooled down to 4x4 grids, others kept whole."""
    pools = []
    for shape, k in zip(shapes, kernels):
        if k == "auto":
            k = max(1, shape[1] // 4) if len(shape) == 3 else 1
        pools.append(FeaturePool(shape, k))
    return pools


def one_hot_rows(index, n: int):
    """(len(index), n) matrix M with M[i, index[i]] = 1, so M.T @ v sums rows of v into `index`."""
    xp = backend.xp()
    return (xp.asarray(index)[:, None] == xp.arange(n)[None, :]).astype(backend.DTYPE)


@dataclass
class Contrast:
    """One layer's contrastive loss on a batch: its value and what the rule needs to update."""

    loss: float
    grad_p: object  # dL/dp, (N, D) in the stacked row order
    b_input: object  # the context rows c_i (the input of B's update)
    b_delta: object  # d_i (dL/dB = sum_i d_i c_i^T)
    pair_accuracy: float  # fraction of context rows with u_pos > u_neg


def contrast(B, p, c, rows, partner, negative, f: str, retrodiction: bool = False) -> Contrast:
    """The loss of the module docstring for context rows `rows` of the stacked features p (N, D_z)
    and contexts c (N, D_c); `partner` and `negative` index rows of p. With `retrodiction` the
    context is p itself (not detached) and dL/dc is added to grad_p."""
    N = p.shape[0]
    n = len(rows)
    f_of = CONTRAST_F[f]
    c_rows = c[rows]
    bc, clipped = B.forward_clipped(c_rows)  # (n, D_z): B c_i
    z_pos, z_neg = p[partner[rows]], p[negative[rows]]
    u_pos, u_neg = (z_pos * bc).sum(axis=1), (z_neg * bc).sum(axis=1)
    f_pos, df_pos = f_of(u_pos)
    f_neg, df_neg = f_of(-u_neg)
    s_pos, s_neg = df_pos / n, -df_neg / n
    d = s_pos[:, None] * z_pos + s_neg[:, None] * z_neg
    grad_p = one_hot_rows(partner[rows], N).T @ (s_pos[:, None] * bc) + one_hot_rows(negative[rows], N).T @ (s_neg[:, None] * bc)
    if retrodiction:
        grad_p = grad_p + one_hot_rows(rows, N).T @ B.backward(d, clipped)
    loss = float((f_pos + f_neg).sum()) / n
    return Contrast(loss, grad_p, c_rows, d, float((u_pos > u_neg).mean()))


def infonce(P, p, partner, tau: float) -> Contrast:
    """BP-InfoNCE's loss (Wu et al. 2026's BP-InfoNCE baseline): a shared head h = P p, anchors the first view's rows
    i < n, candidates the second view's, S_ij = cos(h_i, h_partner(j)) / tau,
    L = (1/n) sum_i -log softmax_j S_ij at j = i (n - 1 in-batch negatives, one direction).
    b_input/b_delta give dL/dP = sum_r (dL/dh_r) p_r^T; grad_p = P^T dL/dh (transposed read)."""
    xp = backend.xp()
    n = p.shape[0] // 2
    h, clipped = P.forward_clipped(p)
    norm = xp.sqrt((h * h).sum(axis=1, keepdims=True))
    a = h / norm
    anchor, candidate = a[:n], a[partner[:n]]
    S = anchor @ candidate.T / tau
    S = S - S.max(axis=1, keepdims=True)
    log_softmax = S - xp.log(xp.exp(S).sum(axis=1, keepdims=True))
    G = (xp.exp(log_softmax) - xp.eye(n, dtype=S.dtype)) / n  # dL/dS
    grad_a = xp.zeros_like(a)
    grad_a[:n] = G @ candidate / tau
    grad_a[partner[:n]] += G.T @ anchor / tau
    grad_h = (grad_a - a * (a * grad_a).sum(axis=1, keepdims=True)) / norm
    loss = -float(xp.diagonal(log_softmax).sum()) / n
    accuracy = float((log_softmax.argmax(axis=1) == xp.arange(n)).mean())
    return Contrast(loss, P.backward(grad_h, clipped), p, grad_h, accuracy)


class ContrastiveRule(ProbeReadout, Rule):
    """Shared by the rules of this module: options, pools, pairs -> stacked rows, metrics; they
    predict through a linear probe (ProbeReadout)."""

    spatial = True
    default_pool = "auto"

    def __init__(self, contrast: ContrastOption = "hinge", pool: PoolOption = None):
        if contrast not in CONTRAST_F:
            raise HiltError(f"unknown --contrast {contrast!r}; allowed: {', '.join(CONTRAST_F)}")
        pool = pool or self.default_pool
        if not re.fullmatch(r"auto|global|\d+(-\d+)*", pool):
            raise HiltError(f"--pool {pool!r}: expected auto, global, or one kernel per layer such as 2-1")
        super().__init__(loss=None)  # evaluated by a linear probe, not by an output loss
        self.contrast, self.pool = contrast, pool

    def params(self) -> dict:
        return {"contrast": self.contrast, "pool": self.pool}

    def pools(self, net):
        """The FeaturePool of every layer (the probe reads the same features)."""
        kernels = parse_pool(self.pool, len(net.blocks)) if self.spatial else [None] * len(net.blocks)
        return feature_pools(net.shapes(), kernels)

    def matrices(self, L: int) -> list[tuple[str, int, int]]:
        """(aux name, layer, context layer) of every B, layers 0-based."""
        raise NotImplementedError

    def attach(self, net, make_crossbar, rng) -> None:
        pools = self.pools(net)
        for name, layer, context in self.matrices(len(net.blocks)):
            net.aux[name] = init_crossbar(make_crossbar, pools[layer].dim, pools[context].dim, rng)

    @staticmethod
    def rows(pairs):
        """The stacked views [first; second] as an xp array, each row's partner row, its negative row."""
        x = backend.asarray(pairs.stacked())
        N = len(x)
        return x, (np.arange(N) + N // 2) % N, np.asarray(pairs.negative)

    @staticmethod
    def metrics(loss: float, pair_accuracy: float, B: int) -> dict:
        """Per-anchor sums as the training loop expects: loss, anchors whose positive scored higher."""
        return {"loss_sum": loss * B, "correct": pair_accuracy * B, "count": B}


class BPClappPP(ContrastiveRule):
    """Self-supervised baseline: CLAPP++ loss at the top layer, backpropagated."""

    name = "bp_clapp_pp"
    default_pool = "global"

    def matrices(self, L):
        return [(f"B{L}", L - 1, L - 1)]

    def signals(self, net, pairs, y):
        """The top layer's loss, sent down to the other layers by `send_down`."""
        x, partner, negative = self.rows(pairs)
        N, L = len(x), len(net.blocks)
        trace = forward_trace(net, x)
        top = self.pools(net)[-1]
        p = top(trace[-1][2])
        (name, _, _), = self.matrices(L)
        r = self.top_loss(net.aux[name], p, partner, negative)
        signals = self.send_down(net, trace, r.grad_p, top.backward(r.grad_p))
        return Signals(self.metrics(r.loss, r.pair_accuracy, N // 2), signals, {name: (r.b_input, r.b_delta)})

    def top_loss(self, B, p, partner, negative):
        """The top layer's contrastive loss of features p (rows x D) with matrix B; its gradients
        and B's update."""
        return contrast(B, p, p, np.arange(len(p)), partner, negative, self.contrast)

    def send_down(self, net, trace, grad_p, grad_s):
        """Block signals from dL/dp and dL/ds of the top layer: backprop with transposed reads."""
        return backpropagate(net, trace, grad_s)

    def reference(self):
        return self


class BPInfoNCE(BPClappPP):
    """Self-supervised baseline: InfoNCE on a projection head at the top layer, backpropagated."""

    name = "bp_infonce"
    temperature = 0.1

    def __init__(self, pool: PoolOption = None):
        super().__init__(pool=pool)

    def params(self) -> dict:
        return {"pool": self.pool}

    def matrices(self, L):
        return [("P", L - 1, L - 1)]

    def top_loss(self, P, p, partner, negative):
        """InfoNCE on the projection head P of features p (rows x D); its gradients and P's update."""
        return infonce(P, p, partner, self.temperature)
