"""Backprop through crossbar primitives only.

    forward:   a_k = W_k s_{k-1} (forward reads),  s_k = rho(a_k),  output a_L
    error:     g_L = dL/da_L / B,   g_k = rho'(a_k) * W_{k+1}^T g_{k+1}   (transposed reads)
    update:    W_k <- W_k - lr * sum_b g_k s_{k-1}^T                      (pulsed updates)

L is the batch-mean loss (`ce`: softmax cross-entropy, `mse`: 1/2 ||a_L - onehot||^2).
"""

from __future__ import annotations

from hilt.rules.base import Rule, Signals, check_finite, output_metrics


def forward_trace(net, x) -> list[tuple]:
    """(a_k, cache_k, s_k) for every block: forward reads only."""
    s, trace = x, []
    for k, block in enumerate(net.blocks, 1):
        a, cache = block.forward(s)
        check_finite(a, "pre-activations", k)
        s = block.act(a)
        trace.append((a, cache, s))
    return trace


def backpropagate(net, trace, g_s) -> list[tuple]:
    """Signals (g_a, cache) of every block from dL/ds of the last block: transposed reads down."""
    signals = [None] * len(net.blocks)
    for k in reversed(range(len(net.blocks))):
        block, (a, cache, _) = net.blocks[k], trace[k]
        g_a = g_s * block.act.deriv(a)
        signals[k] = (g_a, cache)
        if k:
            g_s = block.backward(g_a, cache)
    return signals


class Backprop(Rule):
    """Backprop: transposed reads carry the error, pulsed updates with d = dL/da / B."""

    name = "bp"

    def signals(self, net, x, y):
        trace = forward_trace(net, x)
        out = trace[-1][2]
        loss, g = self.loss(out, y)
        return Signals(output_metrics(out, y, loss), backpropagate(net, trace, g / len(x)))
