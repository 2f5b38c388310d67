"""The CLAPP family (Illing et al. 2021, NeurIPS; Wu et al. 2026, arXiv 2601.21683) and its backprop baseline, on crossbar primitives.

Every layer l of an encoder learns from its own contrastive loss (rules/contrastive.py) on its
pooled activity p^l, with a matrix B^l that is an auxiliary crossbar of the network:

    clapp_pp            context c = p^l of the partner view (lateral), B^l: D_l x D_l
    clapp_pp_nospatial  the same on globally averaged activity (no 2-D spatial dependence)
    clapp_pp_dfb        c = p^L, the top layer's features of the partner view, B^l: D_l x D_L
    clapp_pp_both       both losses, two matrices per layer (B^l and Bfb^l), gradients added
    clapp               CLAPP-s (Illing et al. 2021): one ordering (context = first view) and the
                        context not detached, so layer l also gets the retrodiction term B^T d

Contexts are detached in the CLAPP++ rules and both orderings of a pair are scored (Wu et al. 2026).
Layer inputs are detached: the update of layer l is its loss's gradient through its own pooling
and activation only, the three-factor rule gamma (B c) rho'(a) z^{l-1}:

    g_a^l = rho'(a^l) * pool^T(dL^l/dp^l)        W^l <- W^l - lr sum g_a^l z^{l-1}^T
    B^l   <- B^l - lr sum_i d_i c_i^T            (Hebbian: d_i = s_pos p_pos + s_neg p_neg)

The shared parts (ContrastiveRule: options, pools, rows; the baselines bp_clapp_pp and
bp_infonce, whose top objective dfa's and pc's naive CLAPP rules reuse) are in
rules/contrastive.py.
"""

from __future__ import annotations

import numpy as np

from hilt.analog import backend
from hilt.rules.base import Signals
from hilt.rules.bp import forward_trace
from hilt.rules.contrastive import BPClappPP, ContrastiveRule, contrast


class ClappPP(ContrastiveRule):
    """Self-supervised: CLAPP++, lateral context on pooled features (2-D spatial dependence)."""

    name = "clapp_pp"
    context = "lateral"  # "top" (DFB) or "both"
    retrodiction = False

    def matrices(self, L):
        lateral = [(f"B{l + 1}", l, l) for l in range(L)]
        top = [(f"B{l + 1}", l, L - 1) for l in range(L)]
        return {"lateral": lateral, "top": top, "both": lateral + [(f"Bfb{l + 1}", l, L - 1) for l in range(L)]}[self.context]

    def signals(self, net, pairs, y):
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
        return Signals(self.metrics(loss, top_accuracy, N // 2), signals, aux)

    def reference(self):
        """bp_clapp_pp on this rule's top matrix B^L, same pooling and contrast (Wu et al. 2026, Fig. 4C)."""
        return BPClappPP(self.contrast, self.pool if self.spatial else "global")


class ClappPPNoSpatial(ClappPP):
    """Self-supervised: CLAPP++ on globally averaged features (ablation)."""

    name = "clapp_pp_nospatial"
    spatial = False


class ClappPPDFB(ClappPP):
    """Self-supervised: CLAPP++DFB, context from the top layer."""

    name = "clapp_pp_dfb"
    context = "top"


class ClappPPBoth(ClappPP):
    """Self-supervised: CLAPP++both, lateral and top-layer losses."""

    name = "clapp_pp_both"
    context = "both"


class Clapp(ClappPP):
    """Self-supervised: CLAPP-s, layer-local contrastive hinge loss with retrodiction."""

    name = "clapp"
    retrodiction = True
