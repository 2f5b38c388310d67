"""Self-contrastive Forward-Forward (rules/scff.py) against autodiff of its layer loss (torch), its
one forward read per layer, ideal = exact, and its probe."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hilt
from hilt.data.pairs import Pairs, next_row
from hilt.rules import make_rule
from tests.helpers import assert_same_weights, assert_step_is_gradient, network


def torch_layer_loss(h, w, r, rule, conv=None):
    """The SCFF loss of one layer for input h (torch, batch first) and weights w (out x in+1)."""
    h = (h - h.mean(dim=tuple(range(1, h.dim())), keepdim=True)) / (h.std(dim=tuple(range(1, h.dim())), keepdim=True, unbiased=False) + 1e-10)
    if conv is None:
        y = h @ w[:, :-1].T + w[:, -1]
    else:
        y = F.conv2d(h, w[:, :-1].reshape(w.shape[0], h.shape[1], conv, conv), w[:, -1], padding=conv // 2)
    a_pos, a_neg = 2 * y, y + torch.roll(y, -r, 0)
    g_pos, g_neg = (torch.relu(a_pos) ** 2).mean(1), (torch.relu(a_neg) ** 2).mean(1)
    norm = g_pos.reshape(len(y), -1).norm(dim=1)
    loss = F.softplus(rule.theta_pos - g_pos).mean() + F.softplus(g_neg - rule.theta_neg).mean() + rule.lam * norm.mean()
    act = a_pos - a_pos.mean(1, keepdim=True) if rule.triangle else a_pos
    return loss, torch.relu(act)


@pytest.mark.parametrize("model,shape,conv", [("mlp:12-9-7", (12,), None), ("cnn:3-4", (2, 8, 8), 3)])
def test_each_layers_update_equals_autograd_of_its_scff_loss(rng, model, shape, conv):
    rule = make_rule("scff", theta_pos=0.5, theta_neg=1.5, lam=0.01)
    net = network(model, shape, rule, readout=False)
    x = rng.normal(size=(6, *shape)).astype(np.float32)
    pairs = Pairs(x, x, next_row(12))
    r = rule.shift(x)
    assert 1 <= r <= 5 and r == rule.shift(x)
    W = [torch.tensor(np.asarray(c.weights()), requires_grad=True) for c in net.crossbars()]
    h, total = torch.from_numpy(x), 0.0
    for block, w in zip(net.blocks, W):
        loss, out = torch_layer_loss(h, w, r, rule, conv)
        total = total + loss
        h = (F.max_pool2d(out, 2) if block.pool is not None else out).detach()  # the next layer's input is held
    total.backward()
    before = [w.detach().numpy().copy() for w in W]
    rule.step(net, pairs, None, lr=0.1)
    assert_step_is_gradient(net, before, [w.grad.numpy() for w in W], 0.1, rtol=2e-3, atol=2e-6)


def test_one_forward_read_per_layer_and_no_transposed_read(rng):
    rule = make_rule("scff")
    net = network("mlp:12-9-7", (12,), rule, readout=False)
    x = rng.normal(size=(6, 12)).astype(np.float32)
    net.take_counts()
    rule.step(net, Pairs(x, x, next_row(12)), None, lr=0.1)
    counts = net.take_counts()
    assert counts["forward_reads"] == 2 * 6 and counts["transposed_reads"] == 0 and counts["update_rows"] == 2 * 6


def test_ideal_device_with_perfect_io_reproduces_exact(rng):
    x = rng.normal(size=(6, 12)).astype(np.float32)
    nets = {}
    for device in ("exact", "ideal"):
        rule = make_rule("scff", theta_pos=0.5, lam=0.01)
        nets[device] = network("mlp:12-9-7", (12,), rule, device=device, readout=False)
        for _ in range(3):
            rule.step(nets[device], Pairs(x, x, next_row(12)), None, lr=0.05)
    assert_same_weights(nets["exact"], nets["ideal"], atol=2e-5)


def test_scff_trains_and_is_scored_by_its_probe():
    run = hilt.train(rule="scff", device="exact", epochs=1, out=None)
    assert run.status == "finished" and run.config.model == "mlp:64-512-512"
    assert run.summary["costs"]["train"]["transposed_reads"] == 0
    assert len(run.summary["probe_accuracy_per_layer"]) == 2 and run.summary["test_accuracy"] > 0.9
    data = run._setup.data
    assert (run.network.predict(data.x_test).argmax(1) == data.y_test).mean() == pytest.approx(run.summary["test_accuracy"])


def test_bad_options():
    with pytest.raises(hilt.HiltError, match="--lam must be a finite number >= 0"):
        make_rule("scff", lam=-1.0)
