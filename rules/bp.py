"""Backprop through crossbar primitives only.

    forward:   a_k = W_k s_{k-1} (forward reads),  s_k = rho(a_k),  output a_L
    error:     g_L = dL/da_L / B,   g_k = rho'(a_k) * W_{k+1}^T g_{k+1}   (transposed reads)
    update:    W_k <- W_k - lr * sum_b g_k s_{k-1}^T                      (pulsed updates)

L is the batch-mean loss (`ce`: softmax cross-entropy, `mse`: 1/2 ||a_L - onehot||^2).
"""

from __future__ import annotations

from rules.base import Rule, check_finite, output_metrics


class Backprop(Rule):
    name = "bp"

    def signals(self, net, x, y):
        s, trace = x, []
        for k, block in enumerate(net.blocks, 1):
            a, cache = block.forward(s)
            check_finite(a, "pre-activations", k)
            trace.append((a, cache))
            s = block.act(a)
        loss, g = self.loss(s, y)
        g = g / len(x)
        signals = [None] * len(net.blocks)
        for k in reversed(range(len(net.blocks))):
            block, (a, cache) = net.blocks[k], trace[k]
            g_a = g * block.act.deriv(a)
            signals[k] = (g_a, cache)
            if k:
                g = block.backward(g_a, cache)
        return output_metrics(s, y, loss), signals
