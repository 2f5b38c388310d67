"""What every rule shares: a rule produces one update signal per block, then updates.

`signals(net, x, y)` returns (metrics, [(g_a, cache) per block]) so that the update of block k
is `block.update(g_a, cache, lr)`: W <- W - lr * sum_b g_z x^T. Keeping the signals separate from
applying them lets the alignment metric compare any rule's intended update with backprop's.
"""

from __future__ import annotations

from analog import backend
from devices.errors import HiltError
from rules.losses import LOSSES


class DivergenceError(HiltError):
    """Non-finite states or weights; the message names the layer."""


def check_finite(a, what: str, layer: int):
    if not bool(backend.xp().isfinite(a).all()):
        raise DivergenceError(f"{what} of layer {layer} are not finite")
    return a


class Rule:
    name = "rule"

    def __init__(self, loss: str = "ce"):
        if loss not in LOSSES:
            raise HiltError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
        self.loss_name, self.loss = loss, LOSSES[loss]

    def signals(self, net, x, y):
        raise NotImplementedError

    def step(self, net, x, y, lr: float) -> dict:
        metrics, signals = self.signals(net, backend.asarray(x), y)
        for block, (g_a, cache) in zip(net.blocks, signals):
            block.update(g_a, cache, lr)
        return metrics

    def params(self) -> dict:
        return {"loss": self.loss_name}


def output_metrics(a, y, loss: float) -> dict:
    """Batch loss (summed) and number of correct predictions of the feed-forward output a."""
    correct = int(backend.to_numpy((a.argmax(axis=1) == backend.xp().asarray(y)).sum()))
    return {"loss_sum": loss, "correct": correct, "count": int(a.shape[0])}
