"""Equilibrium propagation (rules/equilibrium.py) against its theorem: with a converged free phase
and beta -> 0 its update is the gradient of the loss at the equilibrium (here by torch autograd
through the same relaxation, converged, in float64), with an error O(beta) for the positive and
negative forms and O(beta^2) for the centred one."""

import numpy as np
import pytest

import hilt
from hilt.experiments.measure.alignment import cosine
from hilt.experiments.reference.torch_twin import ep_gradient
from hilt.rules import make_rule
from tests.helpers import assert_same_weights, network


def small_case(seed=0, scale=0.6):
    """An MLP 6-5-4-5 with small weights (the relaxation contracts) and a batch of 4."""
    rng = np.random.default_rng(seed)
    rule = make_rule("ep", beta=0.1, free_steps=300, nudged_steps=300)
    net = network("mlp:6-5-4-5", (6,), rule, seed=seed)
    for crossbar in net.crossbars():
        crossbar.program(scale * np.asarray(crossbar.weights()))
    x, y = rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 5, 4)
    return net, x, y


def true_gradient(net, x, y) -> list[np.ndarray]:
    """dC(s*)/dW per layer by torch autograd through the relaxation (experiments/reference/torch_twin.py)."""
    return ep_gradient(net, x, y, 5)


def ep_estimate(net, x, y, beta, variant):
    rule = make_rule("ep", beta=beta, free_steps=300, nudged_steps=300, variant=variant)
    signals = rule.signals(net, x, y).blocks
    return [np.asarray(block.outer(*sig), dtype=np.float64) for block, sig in zip(net.blocks, signals)]


def test_centred_ep_equals_the_gradient_at_the_equilibrium():
    net, x, y = small_case()
    truth = true_gradient(net, x, y)
    for k, (g, t) in enumerate(zip(ep_estimate(net, x, y, 1e-3, "centred"), truth), 1):
        assert cosine(g, t) >= 0.999, (k, cosine(g, t))


@pytest.mark.parametrize("model, shape, options", [
    ("mlp:6-5-4-5", (6,), {"loss": "ce", "readout": "separate"}),  # Laborieux et al.'s softmax read-out
    ("mlp:6-5-4-5", (6,), {"step_size": 0.5}),  # damped sweeps: the same fixed point
    ("cnn:3-4", (1, 8, 8), {}),  # conv + max-pool blocks, feedback through the switches
    ("cnn:3-4", (1, 8, 8), {"loss": "ce", "readout": "separate"}),
])
def test_the_theorem_holds_for_every_readout_step_and_convnets(model, shape, options):
    rng = np.random.default_rng(0)
    rule = make_rule("ep", beta=1e-3, free_steps=300, nudged_steps=300, **options)
    net = network(model, shape, rule, seed=0)
    for crossbar in net.crossbars():
        crossbar.program(0.6 * np.asarray(crossbar.weights()))
    x, y = rng.normal(size=(4, *shape)).astype(np.float32), rng.integers(0, 5, 4)
    truth = ep_gradient(net, x, y, 5, loss=rule.loss_name, readout=rule.readout)
    estimate = [np.asarray(block.outer(*sig), dtype=np.float64)
                for block, sig in zip(net.blocks, rule.signals(net, x, y).blocks)]
    assert all(np.linalg.norm(t) > 1e-3 for t in truth)
    for k, (g, t) in enumerate(zip(estimate, truth), 1):
        assert cosine(g, t) >= 0.999, (k, cosine(g, t))
    if rule.readout == "separate":  # the read-out is trained on its exact gradient at s*
        np.testing.assert_allclose(estimate[-1], truth[-1], rtol=1e-3, atol=1e-5)


def test_a_bad_step_or_readout_is_one_line():
    with pytest.raises(hilt.HiltError, match=r"--step-size must be in \(0, 1\]"):
        make_rule("ep", step_size=0)
    with pytest.raises(hilt.HiltError, match="allowed: energy, separate"):
        make_rule("ep", readout="softmax")


def relative_errors(variant, betas, net, x, y, truth):
    return [np.sqrt(sum(((g - t) ** 2).sum() for g, t in zip(ep_estimate(net, x, y, b, variant), truth))
                    / sum((t ** 2).sum() for t in truth)) for b in betas]


def test_the_estimates_error_falls_like_beta_and_beta_squared():
    net, x, y = small_case()
    truth = true_gradient(net, x, y)
    betas = [0.1, 0.05, 0.025, 0.0125]
    slope = {v: np.polyfit(np.log(betas), np.log(relative_errors(v, betas, net, x, y, truth)), 1)[0]
             for v in ("positive", "negative", "centred")}
    assert 0.85 < slope["positive"] < 1.15 and 0.85 < slope["negative"] < 1.15, slope
    assert 1.85 < slope["centred"] < 2.15, slope


def test_ep_reads_every_crossbar_both_ways_and_predicts_its_free_output(rng):
    rule = make_rule("ep", free_steps=5, nudged_steps=3)
    net = network("mlp:6-5-4-5", (6,), rule)
    x, y = rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 5, 4)
    net.take_counts()
    rule.step(net, x, y, lr=0.05)
    counts = net.take_counts()
    sweeps = 5 + 2 * 3
    # per sweep: 3 forward reads (one per layer) and 2 transposed (W_2, W_3), 4 rows each; + the feed-forward pass
    assert counts["forward_reads"] == 4 * (3 + 3 * sweeps) and counts["transposed_reads"] == 4 * 2 * sweeps
    np.testing.assert_allclose(np.asarray(rule.predict(net, x)), np.asarray(rule.free_phase(net, x)[-1]))


@pytest.mark.parametrize("model, shape, options", [("mlp:6-5-4-5", (6,), {}),
                                                   ("cnn:3-4", (1, 8, 8), {"loss": "ce", "readout": "separate"})])
def test_ideal_device_with_perfect_io_reproduces_exact(rng, model, shape, options):
    x, y = rng.normal(size=(4, *shape)).astype(np.float32), rng.integers(0, 5, 4)
    nets = {}
    for device in ("exact", "ideal"):
        rule = make_rule("ep", free_steps=5, nudged_steps=3, **options)
        nets[device] = network(model, shape, rule, device=device)
        for crossbar in nets[device].crossbars():  # small weights: the relaxation contracts
            crossbar.program(0.6 * np.asarray(crossbar.weights()))
        for _ in range(2):
            rule.step(nets[device], x, y, lr=0.05)
    assert_same_weights(nets["exact"], nets["ideal"], atol=5e-5)


def test_ep_learns_digits():
    run = hilt.train(rule="ep", device="exact", epochs=3, out=None)
    assert run.status == "finished" and run.summary["test_accuracy"] > 0.9


@pytest.mark.parametrize("options,message", [({"beta": 0.0}, "--beta must be a finite number > 0"),
                                             ({"free_steps": 0}, "--free-steps must be in"),
                                             ({"variant": "both"}, "--variant 'both': allowed: centred")])
def test_bad_options(options, message):
    with pytest.raises(hilt.HiltError, match=message):
        make_rule("ep", **options)


def test_robustness_relaxes_through_inference_tiles(tmp_path):
    """ep predicts by relaxing, which needs transposed reads of the inference tiles too."""
    run = hilt.train(rule="ep", device="exact", epochs=1, free_steps=4, nudged_steps=2, out=str(tmp_path))
    frame = hilt.robustness(run.run_dir, draws=1)
    assert frame.accuracy.iloc[0] == run.summary["test_accuracy"]
    assert frame.accuracy.notna().all() and frame.accuracy.iloc[1:].max() > 0.5
