"""Helpers shared by the test files: a small network with a rule attached, a small RHM."""

import re

import numpy as np
from typer.testing import CliRunner

from hilt.analog.network import build_network, crossbar_factory
from hilt.devices import parse_device


runner = CliRunner()  # the CLI in-process; result.stderr holds what the user would see
SMALL_RHM = ["v=4", "n_c=4", "m=4", "L=2", "train_size=160", "test_size=96"]


def network(model, shape, rule, device="exact", seed=2, readout=True):
    factory = crossbar_factory(parse_device(device))
    net = build_network(model, shape, 5, factory, seed=seed, readout=readout)
    rule.attach(net, factory, np.random.default_rng(seed))
    return net


def assert_step_is_gradient(net, before, grads, lr, rtol=1e-4, atol=1e-6):
    """The change of every crossbar of `net` since `before` (its weights, out x (in + 1)) is -lr x grads."""
    for k, (w0, g) in enumerate(zip(before, grads)):
        np.testing.assert_allclose((w0 - net.crossbars()[k].weights()) / lr, g, rtol=rtol, atol=atol,
                                   err_msg=f"layer {k + 1}")


def assert_same_weights(a, b, atol):
    """Two networks' crossbars hold the same weights (ideal device with perfect IO vs exact)."""
    for x, y in zip(a.crossbars(), b.crossbars()):
        np.testing.assert_allclose(np.asarray(y.weights()), np.asarray(x.weights()), atol=atol)


EPOCH_LINE = re.compile(r"^.+: epoch \d+/\d+ loss ")  # cli's plain progress line off a terminal


def message_lines(text: str) -> list[str]:
    """The non-empty lines of a command's stderr, less the per-epoch progress lines."""
    return [line for line in text.splitlines() if line.strip() and not EPOCH_LINE.match(line)]
