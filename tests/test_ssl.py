"""Self-supervised training end to end, pairs, DFA and PC against their defining equations, the
ideal analog path, the RHM study and the theory checks (SPECS 2.10, 2.12, 3.3)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hilt.analog.network import build_network, crossbar_factory
from hilt.cli import app
from hilt.data import load_dataset
from hilt.data.pairs import shifted_views, synonym_pairs
from hilt.devices import parse_device
from hilt.experiments.probe import raw_input_accuracy
from hilt.experiments.rhm_study import geometric_sizes, p_star
from hilt.experiments.theory import linear_cnn, relu_mlp, thm31, thm33
from hilt.experiments.train import TrainConfig, build, train
from hilt.rules import make_rule

runner = CliRunner()
SMALL_RHM = ["v=4", "n_c=4", "m=4", "L=2", "train_size=160", "test_size=96"]


def network(model, shape, rule, device="exact", seed=2, readout=True):
    factory = crossbar_factory(parse_device(device))
    net = build_network(model, shape, 5, factory, seed=seed, readout=readout)
    rule.attach(net, factory, np.random.default_rng(seed))
    return net


def test_synonym_pairs_pair_a_class_with_another_sample_and_negatives_with_other_classes(rng):
    y = np.repeat(np.arange(4), 5)
    x = np.arange(len(y), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    idx = rng.permutation(len(y))[:8]
    pairs = synonym_pairs(x, y, idx, rng)
    partner = pairs.second[:, 0].astype(int)
    assert (y[partner] == y[idx]).all() and (partner != idx).all()
    classes = np.concatenate([y[idx], y[idx]])
    assert (classes[pairs.negative] != classes).all()


def test_shifted_views_move_each_image_by_at_most_one_pixel(rng):
    x = np.zeros((6, 1, 8, 8), np.float32)
    x[:, 0, 3:5, 3:5] = 1
    pairs = shifted_views(x, np.arange(6), rng)
    for view in (pairs.first, pairs.second):
        assert view.sum() == x.sum()  # the blob stays inside the image
        ys, xs = np.nonzero(view[:, 0].sum(axis=0))
        assert ys.min() >= 2 and ys.max() <= 5 and xs.min() >= 2 and xs.max() <= 5
    assert not np.array_equal(pairs.first, pairs.second)
    assert list(pairs.negative) == [(i + 1) % 12 for i in range(12)]


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


@pytest.mark.parametrize("name", ["clapp_pp", "clapp_pp_both", "clapp_dfa", "clapp_pc", "bp_infonce"])
def test_ideal_analog_path_reproduces_exact_for_clapp_steps(rng, name):
    rule = make_rule(name)
    model, shape = "mlp:12-10-8", (12,)
    exact = network(model, shape, rule, readout=False)
    ideal = network(model, shape, rule, device="ideal", readout=False)
    for _ in range(2):
        x = rng.normal(size=(4, 1, 1, 12)).astype(np.float32)
        pairs = shifted_views(x, np.arange(4), np.random.default_rng(0))
        pairs.first, pairs.second = pairs.first.reshape(4, 12), pairs.second.reshape(4, 12)
        m_exact, m_ideal = rule.step(exact, pairs, None, 0.05), rule.step(ideal, pairs, None, 0.05)
        assert m_exact["loss_sum"] == pytest.approx(m_ideal["loss_sum"], rel=1e-5)
    for a, b in zip([*exact.weights(), *(c.weights() for c in exact.aux.values())],
                    [*ideal.weights(), *(c.weights() for c in ideal.aux.values())]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_rhm_smoke_clapp_pp_probe_beats_the_raw_input():
    cfg = TrainConfig(dataset="rhm", data_set=SMALL_RHM, model="rhm-cnn:64", device="exact", rule="clapp_pp",
                      optimizer="adam", lr=1e-3, batch_size=16, epochs=30, eval_every=30, out="unused")
    setup = build(cfg)
    from hilt.experiments.train import open_run
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary = train(setup, run=open_run(setup, run_dir=tmp))
    raw = raw_input_accuracy(load_dataset("rhm", SMALL_RHM))
    assert summary["status"] == "finished" and len(summary["probe_accuracy_per_layer"]) == 2
    assert summary["test_accuracy"] > raw + 0.15, (summary["test_accuracy"], raw)


def test_ssl_run_on_rram_writes_probe_accuracy_and_joins_robustness(tmp_path):
    result = runner.invoke(app, ["train", "--rule", "clapp_pp", "--device", "rram", "--model", "mlp:64-32-32",
                                 "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # aihwkit's noise is unseeded and a 1-epoch 32-wide encoder is noisy: check well above chance (0.1) only
    assert summary["model"] == "mlp:64-32-32" and 0.2 < summary["test_accuracy"] <= 1
    assert len(summary["probe_accuracy_per_layer"]) == 2
    rows = runner.invoke(app, ["robustness", summary["run_dir"], "--draws", "1", "--json"])
    assert rows.exit_code == 0, rows.output
    accuracies = [r["accuracy"] for r in json.loads(rows.stdout)]
    assert all(0 <= a <= 1 for a in accuracies) and np.mean(accuracies) > 0.2


def test_ssl_rules_refuse_supervised_options_and_models(tmp_path):
    result = runner.invoke(app, ["train", "--rule", "clapp_pp", "--loss", "mse", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "rule clapp_pp takes no --loss" in result.stderr
    result = runner.invoke(app, ["train", "--rule", "pc", "--inference-steps", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--inference-steps must be in [1, 1000]" in result.stderr


def test_p_star_is_the_log_interpolated_first_crossing():
    assert p_star([10, 100, 1000], [0.5, 0.3, 0.05], 0.1) == pytest.approx(10 ** (2 + 0.2 / 0.25))
    assert p_star([10, 100], [0.05, 0.01], 0.1) == 10
    assert p_star([10, 100], [0.5, 0.4], 0.1) is None
    assert geometric_sizes(10, 1000, 2) == [10, 32, 100, 316, 1000]


def test_rhm_pstar_runs_rules_over_sizes_and_seeds(tmp_path):
    result = runner.invoke(app, ["rhm-pstar", "--device", "exact", "--rules", "clapp_pp,bp", "--data-set", "v=4",
                                 "--data-set", "n_c=4", "--data-set", "m=4", "--p-min", "16", "--p-max", "64",
                                 "--per-decade", "4", "--seeds", "1", "--epochs", "2", "--model", "rhm-cnn:16",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(e["rule"], e["P"]) for e in out["errors"]] == [(r, p) for r in ("clapp_pp", "bp") for p in (16, 32, 64)]
    assert all(0 <= e["mean"] <= 1 for e in out["errors"]) and [p["rule"] for p in out["pstar"]] == ["clapp_pp", "bp"]
    study = tmp_path / out["study_dir"].split("/")[-1]
    assert all((study / f).is_file() for f in ("errors.csv", "pstar.csv", "pstar.png", "sweep.csv"))
    again = runner.invoke(app, ["rhm-pstar", "--device", "exact", "--rules", "clapp_pp,bp", "--data-set", "v=4",
                                "--data-set", "n_c=4", "--data-set", "m=4", "--p-min", "16", "--p-max", "64",
                                "--per-decade", "4", "--seeds", "1", "--epochs", "2", "--model", "rhm-cnn:16",
                                "--out", str(tmp_path), "--json"])
    assert json.loads(again.stdout)["errors"] == out["errors"]  # finished points are reused


def test_thm31_local_equals_bp_and_the_ablations_break_it():
    layers = thm31(batches=2, width=32)["layers"]
    assert all(layer["cos"] >= 0.9999 for layer in layers)
    for ablation in ("random B", "non-orthogonal W", "ReLU", "non-orthogonal W + ReLU"):
        assert min(layer[ablation] for layer in layers[:-1]) < 0.9, ablation


def test_thm33_dfb_is_closer_to_bp_in_every_layer_for_linear_f():
    layers = thm33(batches=2, widths=(32, 16, 8, 4, 2, 1))["layers"]
    assert all(layer["linear_dfb_closer_all_batches"] for layer in layers)
    assert layers[0]["linear_distance_dfb"] < layers[0]["linear_distance_standard"]


def test_linear_cnn_spatial_features_align_better_than_the_global_mean():
    layers = linear_cnn(batches=2, channels=8)["layers"]
    assert layers[-1]["cos"] > 0.9999 and layers[-1]["non-spatial"] > 0.9999  # the top layer is BP's own loss
    assert all(layer["cos"] > layer["non-spatial"] + 0.1 for layer in layers[:-1])


def test_relu_mlp_trains_and_random_fixed_B_aligns_worst():
    layers = relu_mlp(epochs=1, width=32, eval_batches=2)["layers"]
    assert [l["layer"] for l in layers] == [1, 2, 3, 4, 5, 6] and layers[-1]["cos"] > 0.9999
    lower = layers[:-1]
    assert np.mean([l["DFB"] for l in lower]) > np.mean([l["random B"] for l in lower]) + 0.1


def test_definition_34_optimum_fits_B_to_the_bp_activity_gradient():
    """Adam on optimum_B_grads drives dL^l_fb/dz^l(B) towards BP's dL^L/dz^l, so the local update
    at the fitted B aligns with BP's (a fixed batch; layers below the top)."""
    import torch

    from hilt.experiments.theory import (batches_of, bp_activity_grads, bp_grads, cosine, crops, dense_net,
                                    feature_grads, local_grads, optimum_B_grads, uniform_init, weights)

    rng = np.random.default_rng(0)
    net = dense_net(weights([16] * 4, 36, False, rng), relu=True)
    Bs = [None] + [uniform_init(16, 16, rng) for _ in range(4)]
    xa, xb = (c.reshape(len(c), -1) for c in crops(64, rng))
    a, neg, b = next(batches_of(xa, xb, 1, 32))
    pos, negf, ctx = net.forward(a), net.forward(neg), net.contexts(b, True)
    targets = bp_activity_grads(net, pos, negf, ctx, Bs[-1], "softplus")

    def mismatch():
        return [sum(((g - t) ** 2).sum() for g, t in zip(feature_grads(net, l, pos, negf, ctx, Bs[l], "softplus"),
                                                          targets[l])) / sum((t ** 2).sum() for t in targets[l])
                for l in range(1, 4)]

    def alignment():
        local, bp = local_grads(net, pos, negf, ctx, Bs, "softplus"), bp_grads(net, pos, negf, ctx, Bs[-1], "softplus")
        return [cosine(g, h) for g, h in zip(local[:3], bp[:3])]

    before = mismatch(), alignment()
    params = [torch.from_numpy(B) for B in Bs[1:4]]  # shares memory with Bs
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(300):
        for p, g in zip(params, optimum_B_grads(net, pos, negf, ctx, Bs, targets, "softplus")):
            p.grad = torch.from_numpy(g)
        opt.step()
    after = mismatch(), alignment()
    assert all(m < 0.1 * m0 for m, m0 in zip(after[0], before[0]))
    assert all(c > 0.6 for c in after[1]) and max(before[1]) < 0.3


def test_align_cli_prints_json_and_refuses_unknown_checks():
    result = runner.invoke(app, ["align", "--check", "thm31", "--batches", "2", "--width", "16", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["check"] == "thm31" and [l["layer"] for l in out["layers"]] == [1, 2, 3, 4, 5, 6]
    bad = runner.invoke(app, ["align", "--check", "thm99"])
    assert bad.exit_code == 2 and "allowed: thm31, thm33, relu-mlp, linear-cnn" in bad.stderr
