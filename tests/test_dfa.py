"""DFA against its defining equations (rules/dfa.py)."""

import numpy as np

from hilt.rules import make_rule
from tests.helpers import network


def test_dfa_hidden_signal_is_fixed_feedback_of_the_output_error(rng):
    rule = make_rule("dfa")
    net = network("mlp:6-9-8-5", (6,), rule)
    x, y = rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 5, 4)
    signals = rule.signals(net, x, y).blocks
    W = [np.asarray(c.weights()) for c in net.crossbars()]
    a1 = x @ W[0][:, :-1].T + W[0][:, -1]
    a2 = np.maximum(a1, 0) @ W[1][:, :-1].T + W[1][:, -1]
    out = np.maximum(a2, 0) @ W[2][:, :-1].T + W[2][:, -1]
    p = np.exp(out - out.max(1, keepdims=True))
    e = (p / p.sum(1, keepdims=True) - np.eye(5)[y]) / 4
    np.testing.assert_allclose(signals[2][0], e, rtol=1e-5, atol=1e-7)
    for k, a in ((1, a1), (2, a2)):
        F = np.asarray(net.aux[f"F{k}"].weights())
        np.testing.assert_allclose(signals[k - 1][0], (e @ F.T) * (a > 0), rtol=1e-5, atol=1e-7)
