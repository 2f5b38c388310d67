"""What every rule shares: a rule produces one update signal per block, then updates.

`signals(net, x, y)` returns (metrics, [(g_a, cache) per block]) so that the update of block k
is `block.update(g_a, cache, lr)`: W <- W - lr * sum_b g_z x^T. Keeping the signals separate from
applying them lets the alignment metric compare any rule's intended update with its reference's
(`rules.reference_of`: backprop of the same objective).

A rule that needs matrices of its own (CLAPP's B^l, DFA's feedback) makes them in `attach` as
auxiliary crossbars of the network (same factory, saved with it); `updates` adds their updates,
{name: (x, d)} for `net.aux[name].update(x, d, lr)`. A self-supervised rule trains an encoder (a
network without readout) on positive pairs (data/pairs.py) instead of (x, y), and is evaluated
by a linear probe.
"""

from __future__ import annotations

from hilt.analog import backend
from hilt.errors import DivergenceError, HiltError
from hilt.rules.losses import LOSSES


def check_finite(a, what: str, layer: int):
    if not bool(backend.xp().isfinite(a).all()):
        raise DivergenceError(f"{what} of layer {layer} are not finite")
    return a


class Rule:
    name = "rule"
    self_supervised = False

    def __init__(self, loss: str = "ce"):
        if loss not in LOSSES:
            raise HiltError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
        self.loss_name, self.loss = loss, LOSSES[loss]

    def attach(self, net, make_crossbar, rng) -> None:
        """Add the rule's own crossbars to `net.aux` (none by default)."""

    def reference(self) -> "Rule | None":
        """The rule whose signals this rule's are compared with (alignment); None: backprop of its
        loss (`rules.reference_of`, which knows the registry)."""
        return None

    def signals(self, net, x, y):
        raise NotImplementedError

    def updates(self, net, x, y):
        """(metrics, block signals, auxiliary updates {name: (x, d)})."""
        metrics, signals = self.signals(net, backend.asarray(x), y)
        return metrics, signals, {}

    def step(self, net, x, y, lr: float) -> dict:
        metrics, signals, aux = self.updates(net, x, y)
        for block, (g_a, cache) in zip(net.blocks, signals):
            block.update(g_a, cache, lr)
        for name, (inp, d) in aux.items():
            net.aux[name].update(inp, d, lr)
        return metrics

    def params(self) -> dict:
        return {"loss": self.loss_name}


def output_metrics(a, y, loss: float) -> dict:
    """Batch loss (summed) and number of correct predictions of the feed-forward output a."""
    correct = int(backend.to_numpy((a.argmax(axis=1) == backend.xp().asarray(y)).sum()))
    return {"loss_sum": loss, "correct": correct, "count": int(a.shape[0])}
