"""The CLAPP family (SPECS 1 and 2; seeds/002) and its backprop baseline, on crossbar primitives.

Every layer l of an encoder learns from its own contrastive loss (rules/contrastive.py) on its
pooled activity p^l, with a matrix B^l that is an auxiliary crossbar of the network:

    clapp_pp            context c = p^l of the partner view (lateral), B^l: D_l x D_l
    clapp_pp_nospatial  the same on globally averaged activity (no 2-D spatial dependence)
    clapp_pp_dfb        c = p^L, the top layer's features of the partner view, B^l: D_l x D_L
    clapp_pp_both       both losses, two matrices per layer (B^l and Bfb^l), gradients added
    clapp               CLAPP-s (SPECS 1.3-1.4): one ordering (context = first view) and the
                        context not detached, so layer l also gets the retrodiction term B^T d

Contexts are detached in the CLAPP++ rules and both orderings of a pair are scored (SPECS 2.3).
Layer inputs are detached: the update of layer l is its loss's gradient through its own pooling
and activation only, the three-factor rule gamma (B c) rho'(a) z^{l-1}:

    g_a^l = rho'(a^l) * pool^T(dL^l/dp^l)        W^l <- W^l - lr sum g_a^l z^{l-1}^T
    B^l   <- B^l - lr sum_i d_i c_i^T            (Hebbian: d_i = s_pos p_pos + s_neg p_neg)

bp_clapp_pp (SPECS 2.10) uses the same loss at the top layer only, globally pooled by default,
and backpropagates it through all layers with transposed reads. bp_infonce does the same with
the InfoNCE loss on a shared projection head P (a crossbar like B).
"""

from __future__ import annotations

import re

import numpy as np

from hilt.analog import backend
from hilt.analog.network import init_crossbar
from hilt.errors import HiltError
from hilt.rules.base import Rule
from hilt.rules.bp import backpropagate, forward_trace
from hilt.rules.contrastive import CONTRAST_F, contrast, feature_pools, infonce, parse_pool


class ContrastiveRule(Rule):
    """Shared by the rules of this module: options, pools, pairs -> stacked rows, metrics."""

    self_supervised = True
    spatial = True
    default_pool = "auto"

    def __init__(self, contrast: str = "hinge", pool: str | None = None):
        if contrast not in CONTRAST_F:
            raise HiltError(f"unknown --contrast {contrast!r}; allowed: {', '.join(CONTRAST_F)}")
        pool = pool or self.default_pool
        if not re.fullmatch(r"auto|global|\d+(-\d+)*", pool):
            raise HiltError(f"--pool {pool!r}: expected auto, global, or one kernel per layer such as 2-1")
        self.contrast, self.pool = contrast, pool
        self.loss_name = self.loss = None  # evaluated by a linear probe, not by an output loss

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

    def signals(self, net, x, y):
        metrics, signals, _ = self.updates(net, x, y)
        return metrics, signals

    @staticmethod
    def metrics(loss: float, pair_accuracy: float, B: int) -> dict:
        """Per-anchor sums as the training loop expects: loss, anchors whose positive scored higher."""
        return {"loss_sum": loss * B, "correct": pair_accuracy * B, "count": B}


class ClappPP(ContrastiveRule):
    name = "clapp_pp"
    context = "lateral"  # "top" (DFB) or "both"
    retrodiction = False

    def matrices(self, L):
        lateral = [(f"B{l + 1}", l, l) for l in range(L)]
        top = [(f"B{l + 1}", l, L - 1) for l in range(L)]
        return {"lateral": lateral, "top": top, "both": lateral + [(f"Bfb{l + 1}", l, L - 1) for l in range(L)]}[self.context]

    def updates(self, net, pairs, y):
        x, partner, negative = self.rows(pairs)
        N, L = len(x), len(net.blocks)
        rows = np.arange(N) if not self.retrodiction else np.arange(N // 2)
        trace = forward_trace(net, x)
        pools = self.pools(net)
        p = [pool(s) for pool, (_, _, s) in zip(pools, trace)]
        grads = [backend.xp().zeros_like(f) for f in p]
        aux, loss, top_accuracy = {}, 0.0, 0.0
        for name, layer, context in self.matrices(L):
            r = contrast(net.aux[name], p[layer], p[context], rows, partner, negative, self.contrast, self.retrodiction)
            grads[layer] = grads[layer] + r.grad_p
            aux[name] = (r.b_input, r.b_delta)
            loss += r.loss
            if layer == L - 1:
                top_accuracy = r.pair_accuracy
        signals = [(pool.backward(g) * block.act.deriv(a), cache)
                   for pool, g, block, (a, cache, _) in zip(pools, grads, net.blocks, trace)]
        return self.metrics(loss, top_accuracy, N // 2), signals, aux

    def reference(self):
        """bp_clapp_pp on this rule's top matrix B^L, same pooling and contrast (SPECS 2.11)."""
        return BPClappPP(self.contrast, self.pool if self.spatial else "global")


class ClappPPNoSpatial(ClappPP):
    name = "clapp_pp_nospatial"
    spatial = False


class ClappPPDFB(ClappPP):
    name = "clapp_pp_dfb"
    context = "top"


class ClappPPBoth(ClappPP):
    name = "clapp_pp_both"
    context = "both"


class Clapp(ClappPP):
    name = "clapp"
    retrodiction = True


class BPClappPP(ContrastiveRule):
    name = "bp_clapp_pp"
    default_pool = "global"

    def matrices(self, L):
        return [(f"B{L}", L - 1, L - 1)]

    def updates(self, net, pairs, y):
        """The top layer's loss, sent down to the other layers by `send_down`."""
        x, partner, negative = self.rows(pairs)
        N, L = len(x), len(net.blocks)
        trace = forward_trace(net, x)
        top = self.pools(net)[-1]
        p = top(trace[-1][2])
        (name, _, _), = self.matrices(L)
        r = self.top_loss(net.aux[name], p, partner, negative)
        signals = self.send_down(net, trace, r.grad_p, top.backward(r.grad_p))
        return self.metrics(r.loss, r.pair_accuracy, N // 2), signals, {name: (r.b_input, r.b_delta)}

    def top_loss(self, B, p, partner, negative):
        return contrast(B, p, p, np.arange(len(p)), partner, negative, self.contrast)

    def send_down(self, net, trace, grad_p, grad_s):
        """Block signals from dL/dp and dL/ds of the top layer: backprop with transposed reads."""
        return backpropagate(net, trace, grad_s)

    def reference(self):
        return self


class BPInfoNCE(BPClappPP):
    name = "bp_infonce"
    temperature = 0.1

    def __init__(self, pool: str | None = None):
        super().__init__(pool=pool)

    def params(self) -> dict:
        return {"pool": self.pool}

    def matrices(self, L):
        return [("P", L - 1, L - 1)]

    def top_loss(self, P, p, partner, negative):
        return infonce(P, p, partner, self.temperature)
