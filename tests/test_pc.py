"""Predictive coding and naive CLAPP PC against their energy equations (rules/pc.py)."""

import numpy as np

from hilt.data.pairs import shifted_views
from hilt.rules import make_rule
from tests.helpers import network


def test_pc_follows_its_energy_equations(rng):
    rule = make_rule("pc", inference_steps=3, eta_h=0.2, loss="mse")
    net = network("mlp:6-9-5", (6,), rule)
    x, y = rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 5, 4)
    W = [np.asarray(c.weights(), np.float64) for c in net.crossbars()]
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    mu = lambda k, xs: (x if k == 1 else relu(xs[k - 1])) @ W[k - 1][:, :-1].T + W[k - 1][:, -1]  # noqa: E731
    xs = [x, mu(1, None)]
    xs.append(mu(2, xs))
    for _ in range(3):
        e = [None, xs[1] - mu(1, xs), xs[2] - mu(2, xs)]
        g1 = e[1] - (xs[1] > 0) * (e[2] @ W[1][:, :-1])
        g2 = e[2] + (xs[2] - np.eye(5)[y])
        xs = [x, xs[1] - 0.2 * g1, xs[2] - 0.2 * g2]
    e = [None, xs[1] - mu(1, xs), xs[2] - mu(2, xs)]
    signals = rule.signals(net, x, y).blocks
    for k in (1, 2):
        np.testing.assert_allclose(signals[k - 1][0], -e[k] / 4, rtol=1e-4, atol=1e-6)
    # iPC: the weights move at every inference step, along the errors of that step
    before = [c.weights().copy() for c in net.crossbars()]
    rule.step(net, x, y, 0.1)
    assert all(not np.allclose(a, b) for a, b in zip(before, net.weights()))


def test_clapp_pc_descends_the_energy_with_the_top_clapp_loss(rng):
    import torch

    rule = make_rule("clapp_pc", inference_steps=3, eta_h=0.2)
    net = network("mlp:6-9-7", (6,), rule, readout=False)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    pairs = shifted_views(x.reshape(3, 1, 1, 6), np.arange(3), rng)
    pairs.first, pairs.second = pairs.first.reshape(3, 6), pairs.second.reshape(3, 6)
    z, N = torch.tensor(pairs.stacked(), dtype=torch.float64), 6
    partner, negative = (np.arange(N) + N // 2) % N, pairs.negative
    W = [torch.tensor(np.asarray(c.weights()), dtype=torch.float64) for c in net.crossbars()]
    B = torch.tensor(np.asarray(net.aux["B2"].weights()), dtype=torch.float64)
    mu = lambda s, k: s @ W[k][:, :-1].T + W[k][:, -1]  # noqa: E731

    def energy(xs):
        e = [xs[0] - mu(z, 0), xs[1] - mu(torch.relu(xs[0]), 1)]
        p = torch.relu(xs[1])
        bc = p.detach() @ B.T  # contexts detached (bp_clapp_pp's loss)
        u_pos, u_neg = (p[partner] * bc).sum(1), (p[negative] * bc).sum(1)
        top = N * (torch.clamp(1 - u_pos, min=0) + torch.clamp(1 + u_neg, min=0)).mean()
        return sum(0.5 * (ek ** 2).sum() for ek in e) + top, e

    xs = [mu(z, 0)]
    xs.append(mu(torch.relu(xs[0]), 1))
    for _ in range(3):
        xs = [v.detach().requires_grad_(True) for v in xs]
        grads = torch.autograd.grad(energy(xs)[0], xs)
        xs = [v - 0.2 * g for v, g in zip(xs, grads)]
    _, e = energy(xs)
    signals = rule.signals(net, pairs, None).blocks
    for k in (0, 1):
        np.testing.assert_allclose(signals[k][0], (-e[k] / N).detach().numpy(), rtol=1e-4, atol=1e-6)
    before = np.asarray(net.aux["B2"].weights()).copy()
    rule.step(net, pairs, None, 0.1)
    assert not np.allclose(before, net.aux["B2"].weights())  # B^L learns with the weights
