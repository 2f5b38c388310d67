"""Direct feedback alignment (Nokland 2016) on crossbar primitives, supervised and as "naive
CLAPP DFA" (Wu et al. 2026, App. C).

Every hidden layer k has a fixed random feedback crossbar F_k (never updated) that carries the
output error straight to it with one forward read; there are no transposed reads:

    dfa         g_L = dL/da_L / B,           g_k = rho'(a_k) * (F_k g_L)
    clapp_dfa   g_L = rho'(a_L) * dL^L/ds_L (the CLAPP++ loss of the top layer, with its B^L),
                g_k = rho'(a_k) * (F_k dL^L/dp^L)
    update      W_k <- W_k - lr sum_b g_k s_{k-1}^T

F_k has torch's default Linear init, U(+-1/sqrt(fan_in)).
"""

from __future__ import annotations

import numpy as np

from hilt.analog.network import init_crossbar
from hilt.rules.base import Rule, Signals, output_metrics
from hilt.rules.bp import forward_trace
from hilt.rules.contrastive import BPClappPP


def attach_feedback(net, make_crossbar, rng, error_size: int) -> None:
    """A fixed random feedback crossbar F_k (n_k x error_size) for every hidden block k, in net.aux."""
    for k, shape in enumerate(net.shapes()[:-1], 1):
        net.aux[f"F{k}"] = init_crossbar(make_crossbar, int(np.prod(shape)), error_size, rng)


def direct_feedback(net, trace, error, top_g_s) -> list[tuple]:
    """Signals (g_a, cache): the top block from dL/ds_L, the others from F_k error."""
    L = len(net.blocks)
    signals = []
    for k, (block, (a, cache, _)) in enumerate(zip(net.blocks, trace), 1):
        g_s = top_g_s if k == L else net.aux[f"F{k}"].forward(error).reshape(a.shape)
        signals.append((g_s * block.act.deriv(a), cache))
    return signals


class DFA(Rule):
    """Direct feedback alignment: fixed random feedback crossbars carry the output error."""

    name = "dfa"

    def attach(self, net, make_crossbar, rng):
        attach_feedback(net, make_crossbar, rng, int(np.prod(net.shapes()[-1])))

    def signals(self, net, x, y):
        trace = forward_trace(net, x)
        out = trace[-1][2]
        loss, g = self.loss(out, y)
        g = g / len(x)
        return Signals(output_metrics(out, y, loss), direct_feedback(net, trace, g, g))


class ClappDFA(BPClappPP):
    """Self-supervised: naive CLAPP DFA, top-layer CLAPP++ loss sent down by fixed random crossbars."""

    name = "clapp_dfa"
    default_pool = "auto"

    def attach(self, net, make_crossbar, rng):
        super().attach(net, make_crossbar, rng)
        attach_feedback(net, make_crossbar, rng, self.pools(net)[-1].dim)

    def send_down(self, net, trace, grad_p, grad_s):
        return direct_feedback(net, trace, grad_p, grad_s)

    def reference(self):
        return BPClappPP(self.contrast, self.pool)
