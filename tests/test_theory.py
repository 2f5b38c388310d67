"""The linear-network theory checks of local contrastive learning (Wu et al. 2026, §3; experiments/studies/theory.py)."""

import json

import numpy as np
import pytest

from hilt.cli import app
from hilt.experiments.studies.theory import linear_cnn, relu_mlp, thm31, thm33
from tests.helpers import runner



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


@pytest.mark.slow
def test_definition_34_optimum_fits_B_to_the_bp_activity_gradient():
    """Adam on optimum_B_grads drives dL^l_fb/dz^l(B) towards BP's dL^L/dz^l, so the local update
    at the fitted B aligns with BP's (a fixed batch; layers below the top)."""
    import torch

    from hilt.experiments.studies.theory import (batches_of, bp_activity_grads, bp_grads, cosine, crops, dense_net,
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
