"""What every rule shares: a rule produces one update signal per block, then updates.

A rule is one method: `signals(net, x, y) -> Signals`, the batch's metrics, one (g_a, cache) per
block, and the updates of the rule's own crossbars. `step` applies them: the update of block k
is `block.update(g_a, cache, lr)` (W <- W - lr * sum_b g_z x^T), and aux {name: (x, d)} is
`net.aux[name].update(x, d, lr)`. Keeping the signals separate from applying them lets the
alignment metric compare any rule's intended update with its reference's (`rules.reference_of`:
backprop of the same objective). Only a rule whose weights move during its own inference (pc)
overrides `step` as well.

A rule that needs matrices of its own (CLAPP's B^l, DFA's feedback) makes them in `attach` as
auxiliary crossbars of the network (same factory, saved with it). A self-supervised rule trains an
encoder (a network without readout) on positive pairs (data/pairs.py) instead of (x, y), has no
output loss (loss None), and is evaluated by a linear probe (rules/probe.py).

How a rule predicts is the rule's too: `predict(net, x)` gives class scores (batch x classes), the
network's output read by default; `fit_readout(net, data)` first fits whatever the prediction
needs beyond the network (a self-supervised rule's probe). Evaluation, compare and robustness score
every rule through these two.

A rule's options are its constructor's parameters, each with a type, a default and a one-line doc
as `Annotated` metadata (`alpha: Annotated[float, "nudging asymmetry in [0, 1]"] = 0.5`); the
command line, sweeps, recipes, `hilt rules` and config.json read them from there
(rules/registry.py), for built-in and plug-in rules alike.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Annotated, NamedTuple

import numpy as np

from hilt.analog import backend
from hilt.errors import DivergenceError, HiltError
from hilt.rules.losses import LOSSES


LossOption = Annotated[str | None, f"output loss: {' | '.join(LOSSES)}"]


def batch_generator(*arrays) -> np.random.Generator:
    """A random generator seeded by a batch's content (its labels, its first rows): the same batch
    always draws the same, so a resumed run repeats an uninterrupted one (the batches come from
    the run's checkpointed data order)."""
    digest = hashlib.blake2b(b"".join(np.ascontiguousarray(backend.to_numpy(a)).tobytes() for a in arrays),
                             digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def check_finite(a, what: str, layer: int):
    """a itself, or DivergenceError naming `what` and the layer where a is not finite."""
    if not bool(backend.xp().isfinite(a).all()):
        raise DivergenceError(f"{what} of layer {layer} are not finite")
    return a


class NetworkPlan(NamedTuple):
    """The network a rule trains: the per-sample input shape it reads, whether it ends in a readout
    of the classes, and its model when --model is not given."""

    input_shape: tuple
    readout: bool
    default_model: str
    model_kinds: tuple[str, ...] | None = None  # the --model kinds it can train (None: any)


class Signals(NamedTuple):
    metrics: dict  # output_metrics of the batch (loss_sum, correct, count)
    blocks: list  # (g_a, cache) per block of the network
    aux: dict = {}  # {name: (x, d)}: the updates of the rule's own crossbars in net.aux


class Rule:
    """A learning rule (the protocol of this module's docstring): options in the constructor,
    signals() for a batch, step() to apply them, predict() to classify."""

    name = "rule"
    self_supervised = False

    def __init__(self, loss: LossOption = "ce"):
        """loss None: a self-supervised rule, scored by a probe, not by an output loss."""
        if loss is not None and loss not in LOSSES:
            raise HiltError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
        self.loss_name, self.loss = loss, LOSSES.get(loss)

    def network_plan(self, data) -> NetworkPlan:
        """The network this rule trains on `data`: by default the data's input shape and a readout
        of the classes (the dataset's default model); a self-supervised rule: the encoder only."""
        if self.self_supervised:
            return NetworkPlan(data.input_shape, False, data.default_encoder)
        return NetworkPlan(data.input_shape, True, data.default_model)

    def attach(self, net, make_crossbar, rng) -> None:
        """Add the rule's own crossbars to `net.aux` (none by default)."""

    def reference(self) -> "Rule | None":
        """The rule whose signals this rule's are compared with (alignment); None: backprop of its
        loss (`rules.reference_of`, which knows the registry)."""
        return None

    def signals(self, net, x, y) -> Signals:
        """The rule itself: what every crossbar of `net` is asked to learn from this batch."""
        raise NotImplementedError(f"rule {self.name} defines no signals()")

    def step(self, net, x, y, lr: float) -> dict:
        """One training step on a batch: the rule's signals, then every block's update (W <- W - lr
        sum g_a x^T) and its own crossbars'. Returns the batch's metrics (loss_sum,
        correct, count)."""
        signals = self.signals(net, x if self.self_supervised else backend.asarray(x), y)
        for block, (g_a, cache) in zip(net.blocks, signals.blocks):
            block.update(g_a, cache, lr)
        for name, (inp, d) in signals.aux.items():
            net.aux[name].update(inp, d, lr)
        return signals.metrics

    def params(self) -> dict:
        """The options as the rule uses them (config.json records them; a resumed run rebuilds the
        rule from them): by default each constructor parameter's attribute of the same name (loss:
        loss_name). A rule that keeps an option under another name overrides this."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: self.loss_name if n == "loss" else getattr(self, n) for n in names if n == "loss" or hasattr(self, n)}

    def fit_readout(self, net, data) -> None:
        """Fit what `predict` needs beyond the network's weights, from data's training set (nothing
        by default). Called before every evaluation of `net`."""

    def predict(self, net, x):
        """Class scores (batch x n_classes, the largest wins) for the inputs x: by default the
        network's output, one forward read per block."""
        return net.forward(x)


def output_metrics(a, y, loss: float) -> dict:
    """Batch loss (summed) and number of correct predictions of the feed-forward output a."""
    correct = int(backend.to_numpy((a.argmax(axis=1) == backend.xp().asarray(y)).sum()))
    return {"loss_sum": loss, "correct": correct, "count": int(a.shape[0])}
