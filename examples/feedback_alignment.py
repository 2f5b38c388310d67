"""Feedback alignment (Lillicrap et al. 2016, "Random synaptic feedback weights support error
backpropagation for deep learning", Nat. Commun. 7:13276) as a rule of your own, in one file.

Backprop carries the output error down with the transposed weights, W^T (a transposed read of
each crossbar). Feedback alignment carries it with a fixed random matrix B instead, held in a
crossbar of its own and never updated; the forward weights come to align with B^T as they learn:

    g_L = dL/da_L / batch                         the output error
    g_k = rho'(a_k) * (B_{k+1} g_{k+1})           one forward read of the feedback crossbar B_{k+1}
    W_k <- W_k - lr sum_batch g_k s_{k-1}^T       pulsed updates, as for backprop

B_{k+1} is drawn uniform in +-feedback_scale / sqrt(n_{k+1}). Use it like a built-in rule:

    python cli.py train --rule examples/feedback_alignment.py:FeedbackAlignment --device rram
    python cli.py train --rule examples/feedback_alignment.py:FeedbackAlignment --rule-opt feedback_scale=0.5
    hilt.train(rule="examples/feedback_alignment.py:FeedbackAlignment", feedback_scale=0.5)
"""

from typing import Annotated

import numpy as np

from hilt import HiltError, Rule, Signals
from hilt.analog import backend
from hilt.rules.base import LossOption, output_metrics
from hilt.rules.bp import forward_trace


class FeedbackAlignment(Rule):
    """Feedback alignment (Lillicrap et al. 2016): fixed random crossbars carry the error down."""

    def __init__(self, feedback_scale: Annotated[float, "size of the fixed random feedback, x 1/sqrt(fan-in)"] = 1.0,
                 loss: LossOption = "ce"):
        super().__init__(loss)
        if not 0 < feedback_scale < 1e3:
            raise HiltError(f"--rule-opt feedback_scale must be in (0, 1000) (got {feedback_scale})")
        self.feedback_scale = feedback_scale

    def params(self) -> dict:
        return {"feedback_scale": self.feedback_scale, "loss": self.loss_name}

    def attach(self, net, make_crossbar, rng):
        """One feedback crossbar B_{k+1} (n_k x n_{k+1}) below every block but the first."""
        sizes = [int(np.prod(shape)) for shape in net.shapes()]
        if any(block.pool is not None or getattr(block.layer, "geometry", None) for block in net.blocks):
            raise HiltError("feedback alignment (this example) takes MLP models only, e.g. --model mlp:64-256-10")
        for k in range(1, len(net.blocks)):
            bound = self.feedback_scale / np.sqrt(sizes[k])
            B = make_crossbar(sizes[k - 1], sizes[k], False)
            B.program(backend.asarray(rng.uniform(-bound, bound, size=(sizes[k - 1], sizes[k]))))
            net.aux[f"B{k + 1}"] = B

    def signals(self, net, x, y):
        trace = forward_trace(net, x)  # (a_k, read cache, s_k) per block: forward reads
        out = trace[-1][2]
        loss, g = self.loss(out, y)
        g = g / len(x)  # g_L
        blocks = [None] * len(net.blocks)
        for k in reversed(range(len(net.blocks))):  # 0-based: block k is layer k + 1
            a, cache, _ = trace[k]
            blocks[k] = (g, cache)
            if k:
                g = net.aux[f"B{k + 1}"].forward(g) * net.blocks[k - 1].act.deriv(trace[k - 1][0])
        return Signals(output_metrics(out, y, loss), blocks)
