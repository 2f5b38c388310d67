"""The CLAPP family, its BP baseline and naive CLAPP DFA: every hand-written update (W^l and B^l)
equals torch autograd of the corresponding detached local loss (Wu et al. 2026, §3)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hilt.analog.network import build_network, crossbar_factory
from hilt.data.pairs import Pairs
from hilt.devices import HiltError, parse_device
from hilt.rules import make_rule

# (model, input shape, pool): dense; conv with max-pool in the block and avg-pool of the features
CASES = [("mlp:12-9-7", (12,), "auto"), ("cnn:3-4", (2, 8, 8), "2-1"), ("rhm-cnn:6", (4, 8), "auto")]
F_TORCH = {"hinge": lambda x: torch.clamp(1 - x, min=0), "softplus": lambda x: F.softplus(-x), "linear": lambda x: -x}


def encoder(model, shape, rule, device="exact", seed=3):
    net = build_network(model, shape, 5, crossbar_factory(parse_device(device)), seed=seed, readout=False)
    rule.attach(net, crossbar_factory(parse_device(device)), np.random.default_rng(seed))
    return net


def pairs_for(rng, shape, B=5, random_negatives=False):
    first = rng.normal(size=(B, *shape)).astype(np.float32)
    second = (first + 0.3 * rng.normal(size=first.shape)).astype(np.float32)
    negative = rng.integers(0, 2 * B, size=2 * B) if random_negatives else (np.arange(2 * B) + 1 + B) % (2 * B)
    return Pairs(first, second, negative)


def torch_params(net):
    Ws = [torch.tensor(np.asarray(c.weights()), dtype=torch.float64, requires_grad=True) for c in net.crossbars()]
    Bs = {n: torch.tensor(np.asarray(c.weights()), dtype=torch.float64, requires_grad=True) for n, c in net.aux.items()}
    return Ws, Bs


def torch_block(model, W, x):
    """pool(W x + b) then ReLU, as hilt's blocks."""
    if model.startswith("mlp"):
        return torch.relu(x.reshape(len(x), -1) @ W[:, :-1].T + W[:, -1])
    if model.startswith("cnn"):
        out, C = W.shape[0], x.shape[1]
        return torch.relu(F.max_pool2d(F.conv2d(x, W[:, :-1].reshape(out, C, 3, 3), W[:, -1], padding=1), 2))
    out, C = W.shape[0], x.shape[1]
    return torch.relu(F.conv1d(x, W[:, :-1].reshape(out, C, 2), W[:, -1], stride=2))


def torch_features(s, kernel):
    if s.dim() == 2:
        return s
    if kernel is None:
        return s.reshape(len(s), s.shape[1], -1).mean(2)
    if s.dim() == 3:
        return s.reshape(len(s), -1)
    return F.avg_pool2d(s, kernel).reshape(len(s), -1)


def torch_contrast(B, p, c, rows, partner, negative, f):
    bc = c[rows] @ B.T
    u_pos = (p[partner[rows]] * bc).sum(1)
    u_neg = (p[negative[rows]] * bc).sum(1)
    return (F_TORCH[f](u_pos) + F_TORCH[f](-u_neg)).mean()


def hilt_grads(net, rule, pairs):
    """Gradient matrices from the rule's own signals (block.outer) and auxiliary updates (d^T x)."""
    _, signals, aux = rule.signals(net, pairs, None)
    W = [np.asarray(b.outer(*s)) for b, s in zip(net.blocks, signals)]
    return W, {n: np.asarray(d.T @ x) for n, (x, d) in aux.items()}


def prepared(rng, name, model, shape):
    """(net, pairs, hilt's W and B gradients, torch's W and B parameters) for one rule step."""
    rule = make_rule(name)
    net = encoder(model, shape, rule)
    pairs = pairs_for(rng, shape)
    return (net, pairs, *hilt_grads(net, rule, pairs), *torch_params(net))


def kernels(rule, net):
    return [p.kernel for p in rule.pools(net)]


@pytest.mark.parametrize("contrast", ["hinge", "softplus", "linear"])
@pytest.mark.parametrize("name", ["clapp_pp", "clapp_pp_nospatial", "clapp_pp_dfb", "clapp_pp_both", "clapp"])
@pytest.mark.parametrize("model,shape,pool", CASES)
def test_local_updates_equal_autograd_of_the_detached_local_losses(rng, name, contrast, model, shape, pool):
    rule = make_rule(name, contrast=contrast, pool=pool)
    net = encoder(model, shape, rule)
    pairs = pairs_for(rng, shape, random_negatives=name == "clapp_pp")
    W_hilt, B_hilt = hilt_grads(net, rule, pairs)

    Ws, Bs = torch_params(net)
    ks = kernels(rule, net)
    N, L = 2 * len(pairs), len(Ws)
    partner, negative = (np.arange(N) + N // 2) % N, pairs.negative
    rows = np.arange(N // 2) if name == "clapp" else np.arange(N)
    z = torch.tensor(pairs.stacked(), dtype=torch.float64)
    feats = []
    for l in range(L):
        s = torch_block(model, Ws[l], z.detach())  # layer inputs are detached
        feats.append(torch_features(s, ks[l]))
        z = s
    top = feats[-1].detach()
    total = 0
    for l in range(L):
        p = feats[l]
        if name == "clapp":
            total = total + torch_contrast(Bs[f"B{l + 1}"], p, p, rows, partner, negative, contrast)  # context not detached
            continue
        if name != "clapp_pp_dfb":
            total = total + torch_contrast(Bs[f"B{l + 1}"], p, p.detach(), rows, partner, negative, contrast)
        if name == "clapp_pp_dfb":
            total = total + torch_contrast(Bs[f"B{l + 1}"], p, top, rows, partner, negative, contrast)
        if name == "clapp_pp_both":
            total = total + torch_contrast(Bs[f"Bfb{l + 1}"], p, top, rows, partner, negative, contrast)
    total.backward()
    for l in range(L):
        np.testing.assert_allclose(W_hilt[l], Ws[l].grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=f"W{l + 1}")
    assert set(B_hilt) == set(Bs)
    for n, B in Bs.items():
        np.testing.assert_allclose(B_hilt[n], B.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=n)


@pytest.mark.parametrize("model,shape,pool", CASES)
def test_bp_clapp_pp_backpropagates_the_top_loss(rng, model, shape, pool):
    net, pairs, W_hilt, B_hilt, Ws, Bs = prepared(rng, "bp_clapp_pp", model, shape)
    N = 2 * len(pairs)
    s = torch.tensor(pairs.stacked(), dtype=torch.float64)
    for W in Ws:
        s = torch_block(model, W, s)  # no detach: end to end
    p = torch_features(s, None if s.dim() > 2 else 1)
    name = f"B{len(Ws)}"
    torch_contrast(Bs[name], p, p.detach(), np.arange(N), (np.arange(N) + N // 2) % N, pairs.negative, "hinge").backward()
    for l, W in enumerate(Ws):
        np.testing.assert_allclose(W_hilt[l], W.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(B_hilt[name], Bs[name].grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model,shape,pool", CASES)
def test_bp_infonce_backpropagates_infonce_through_the_head_and_both_views(rng, model, shape, pool):
    net, pairs, W_hilt, B_hilt, Ws, Bs = prepared(rng, "bp_infonce", model, shape)
    n = len(pairs)
    s = torch.tensor(pairs.stacked(), dtype=torch.float64)
    for W in Ws:
        s = torch_block(model, W, s)
    h = torch_features(s, None if s.dim() > 2 else 1) @ Bs["P"].T
    sim = F.cosine_similarity(h[:n, None, :], h[None, n:, :], dim=2) / 0.1
    F.cross_entropy(sim, torch.arange(n)).backward()  # nothing detached
    for l, W in enumerate(Ws):
        np.testing.assert_allclose(W_hilt[l], W.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(B_hilt["P"], Bs["P"].grad.numpy(), rtol=1e-4, atol=1e-6)


def test_clapp_dfa_sends_the_top_gradient_through_fixed_feedback(rng):
    model, shape = "mlp:12-9-8-7", (12,)
    net, pairs, W_hilt, B_hilt, Ws, Bs = prepared(rng, "clapp_dfa", model, shape)
    N = 2 * len(pairs)
    s = torch.tensor(pairs.stacked(), dtype=torch.float64)
    acts = []
    for W in Ws:
        s = torch_block(model, W, s.detach())
        acts.append(s)
    p = acts[-1]
    p.retain_grad()
    torch_contrast(Bs["B3"], p, p.detach(), np.arange(N), (np.arange(N) + N // 2) % N, pairs.negative, "hinge").backward()
    np.testing.assert_allclose(W_hilt[2], Ws[2].grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(B_hilt["B3"], Bs["B3"].grad.numpy(), rtol=1e-4, atol=1e-6)
    # hidden layers: the surrogate loss <F_k dL/dp, s_k> has exactly the DFA update as its gradient
    for k in (1, 2):
        Fk = torch.tensor(np.asarray(net.aux[f"F{k}"].weights()), dtype=torch.float64)
        s_prev = torch.tensor(pairs.stacked(), dtype=torch.float64) if k == 1 else acts[0].detach()
        W = Ws[k - 1].detach().clone().requires_grad_(True)
        (torch_block(model, W, s_prev) * (p.grad @ Fk.T)).sum().backward()
        np.testing.assert_allclose(W_hilt[k - 1], W.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_bad_options_are_one_clear_error():
    with pytest.raises(HiltError, match="allowed: hinge, softplus, linear"):
        make_rule("clapp_pp", contrast="cosine")
    with pytest.raises(HiltError, match="--pool"):
        make_rule("clapp_pp", pool="2x2")
    with pytest.raises(HiltError, match="rule bp_infonce takes no --contrast"):
        make_rule("bp_infonce", contrast="hinge")
    with pytest.raises(HiltError, match="one kernel per layer"):
        encoder("mlp:12-9-7", (12,), make_rule("clapp_pp", pool="1-1-1"))
