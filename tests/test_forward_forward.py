"""Forward-Forward (rules/forward_forward.py) against autodiff of each layer's FF loss, its forward
reads only, its prediction by goodness, and training on both paths."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hilt
from hilt.rules import make_rule
from tests.helpers import assert_same_weights, assert_step_is_gradient, network

D, C = 6, 5


def step_case(rng, device="exact", theta=2.0):
    rule = make_rule("ff", theta=theta)
    net = network("mlp:11-9-7", (D + C,), rule, device=device, readout=False)
    x, y = rng.normal(size=(8, D)).astype(np.float32), rng.integers(0, C, 8)
    return rule, net, x, y


def test_each_layers_update_equals_autograd_of_its_ff_loss(rng):
    rule, net, x, y = step_case(rng)
    wrong = rule.wrong_labels(x, y, C)
    assert (wrong != y).all() and np.array_equal(wrong, rule.wrong_labels(x, y, C))  # wrong, and reproducible
    W = [torch.tensor(np.asarray(c.weights()), requires_grad=True) for c in net.crossbars()]
    onehot = lambda labels: F.one_hot(torch.from_numpy(labels), C).float()  # noqa: E731
    s = torch.cat([torch.cat([torch.from_numpy(x), onehot(y)], 1), torch.cat([torch.from_numpy(x), onehot(wrong)], 1)])
    total = 0.0
    for w in W:
        h = torch.relu(s @ w[:, :-1].T + w[:, -1])
        G = (h * h).sum(1)
        total = total + F.softplus(2.0 - G[:8]).mean() + F.softplus(G[8:] - 2.0).mean()
        s = (h / (h.norm(dim=1, keepdim=True) + 1e-8)).detach()  # the next layer's input is held fixed
    total.backward()
    before = [w.detach().numpy().copy() for w in W]
    rule.step(net, x, y, lr=0.1)
    assert_step_is_gradient(net, before, [w.grad.numpy() for w in W], 0.1)


def test_forward_reads_only_and_prediction_by_goodness(rng):
    rule, net, x, y = step_case(rng)
    net.take_counts()
    rule.step(net, x, y, lr=0.1)
    counts = net.take_counts()
    assert counts["transposed_reads"] == 0 and counts["forward_reads"] == 2 * 8 * 2  # pos + neg rows, 2 layers
    scores = np.asarray(rule.predict(net, x))
    assert counts is not None and net.take_counts()["forward_reads"] == C * 8 * 2  # one pass per class
    for c in range(C):  # the score of class c is the summed goodness of [x, onehot(c)]
        s, goodness = np.concatenate([x, np.eye(C, dtype=np.float32)[[c] * 8]], 1), 0.0
        for crossbar in net.crossbars():
            W = np.asarray(crossbar.weights())
            h = np.maximum(s @ W[:, :-1].T + W[:, -1], 0)
            goodness = goodness + (h * h).sum(1)
            s = h / (np.linalg.norm(h, axis=1, keepdims=True) + 1e-8)
        np.testing.assert_allclose(scores[:, c], goodness, rtol=1e-5)
    later = make_rule("ff", score_from=2)
    np.testing.assert_array_less(np.asarray(later.predict(net, x)), scores + 1e-6)  # fewer layers, less goodness


def test_ideal_device_with_perfect_io_reproduces_exact(rng):
    nets = {}
    for device in ("exact", "ideal"):
        rule, nets[device], x, y = step_case(np.random.default_rng(3), device)
        for _ in range(3):
            rule.step(nets[device], x, y, lr=0.05)
    assert_same_weights(nets["exact"], nets["ideal"], atol=2e-5)


def test_ff_learns_digits_scored_by_its_goodness_and_resumes_bit_for_bit():
    run = hilt.train(rule="ff", device="exact", epochs=3, out=None)
    assert run.config.model == "mlp:74-512-512" and run.summary["costs"]["train"]["transposed_reads"] == 0
    assert run.summary["test_accuracy"] > 0.85
    data = run._setup.data
    assert (run.network.predict(data.x_test).argmax(1) == data.y_test).mean() == run.summary["test_accuracy"]
    first = hilt.train(rule="ff", device="exact", epochs=2, out=None).resume(epochs=3)
    assert first.metrics.equals(run.metrics)


@pytest.mark.parametrize("options,message", [({"theta": -1.0}, "--theta must be a finite number >= 0"),
                                             ({"score_from": 0}, "--score-from must be >= 1"),
                                             ({"negatives": "mixed"}, "--negatives 'mixed': allowed: label, hybrid")])
def test_bad_options(options, message):
    with pytest.raises(hilt.HiltError, match=message):
        make_rule("ff", **options)


def test_ff_refuses_convolutions():
    with pytest.raises(hilt.HiltError, match="rule ff trains mlp models .default mlp:74-512-512.; got --model cnn:4"):
        hilt.train(rule="ff", device="exact", model="cnn:4", epochs=1, out=None)


def test_hybrid_negatives_mix_two_images_in_large_regions(rng):
    from hilt.rules.forward_forward import hybrid_masks

    x = rng.uniform(size=(16, 1, 8, 8)).astype(np.float32)
    rule = make_rule("ff", negatives="hybrid")
    neg = rule.hybrids(x)
    np.testing.assert_array_equal(neg, rule.hybrids(x))  # seeded by the batch
    for i in range(16):  # every pixel comes from the image itself or from one other image
        from_self = np.isclose(neg[i], x[i])
        others = [j for j in range(16) if j != i and np.all(np.isclose(neg[i], x[i]) | np.isclose(neg[i], x[j]))]
        assert others, i
    masks = hybrid_masks((2000, 1, 8, 8), np.random.default_rng(0))
    assert set(np.unique(masks)) <= {0.0, 1.0} and 0.3 < masks.mean() < 0.7
    same = (masks[:, :, :, 1:] == masks[:, :, :, :-1]).mean()  # neighbours agree far more than for random bits
    assert same > 0.8, same
    assert from_self.any()


def test_hybrid_ff_update_equals_autograd_and_it_is_scored_by_its_probe(rng):
    rule = make_rule("ff", negatives="hybrid")
    net = network("mlp:6-9-7", (6,), rule, readout=False)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    from hilt.data.pairs import Pairs, next_row

    W = [torch.tensor(np.asarray(c.weights()), requires_grad=True) for c in net.crossbars()]
    s, total = torch.from_numpy(np.concatenate([x, rule.hybrids(x)])), 0.0
    for w in W:
        h = torch.relu(s @ w[:, :-1].T + w[:, -1])
        G = (h * h).sum(1)
        total = total + F.softplus(2.0 - G[:8]).mean() + F.softplus(G[8:] - 2.0).mean()
        s = (h / (h.norm(dim=1, keepdim=True) + 1e-8)).detach()
    total.backward()
    before = [w.detach().numpy().copy() for w in W]
    rule.step(net, Pairs(x, x, next_row(16)), None, lr=0.1)
    assert_step_is_gradient(net, before, [w.grad.numpy() for w in W], 0.1)
    run = hilt.train(rule="ff", negatives="hybrid", device="exact", epochs=1, out=None)
    assert run.config.model == "mlp:64-512-512" and len(run.summary["probe_accuracy_per_layer"]) == 2
    assert run.summary["test_accuracy"] > 0.85
