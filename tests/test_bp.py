"""bp through crossbar primitives equals torch autograd; it learns digits; the rule protocol."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hilt.analog.network import build_network, crossbar_factory

from hilt.devices import parse_device
from hilt.experiments.reference.torch_twin import torch_twin
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.trainer import train
from hilt.rules import make_rule


def torch_forward(net, x):
    """The same network in torch, from the crossbars' weights."""
    params, forward = torch_twin(net)
    return forward(torch.from_numpy(x)), params


@pytest.mark.parametrize("model,shape,loss", [("mlp:12-9-7-5", (12,), "ce"), ("mlp:12-9-5", (12,), "mse"),
                                              ("cnn:3-4", (2, 8, 8), "ce"), ("cnn1d:4-3-5", (2, 21), "ce"),
                                              ("rhm-cnn:6", (3, 8), "ce"), ("vgg6@0.0625", (3, 16, 16), "ce"),
                                              ("vgg16@0.0625", (3, 32, 32), "ce")])
def test_bp_update_equals_autograd_gradient(rng, model, shape, loss):
    net = build_network(model, shape, 5, crossbar_factory(parse_device("exact")), seed=1)
    x = rng.normal(size=(6, *shape)).astype(np.float32)
    y = rng.integers(0, 5, size=6)
    out, params = torch_forward(net, x)
    if loss == "ce":
        L = F.cross_entropy(out, torch.from_numpy(y))
    else:
        L = 0.5 * ((out - F.one_hot(torch.from_numpy(y), 5).float()) ** 2).sum(1).mean()
    L.backward()
    before = [W.detach().numpy().copy() for W in params]
    make_rule("bp", loss=loss).step(net, x, y, lr=0.1)
    for k, (W0, P) in enumerate(zip(before, params)):
        np.testing.assert_allclose((W0 - net.blocks[k].crossbar.weights()) / 0.1, P.grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=f"layer {k + 1}")


@pytest.mark.parametrize("device", ["exact", "ideal"])
def test_bp_learns_digits(tmp_path, device):
    cfg = TrainConfig(device=device, rule="bp", epochs=10, lr=0.1, batch_size=20, out=str(tmp_path))
    summary = train(build(cfg))
    assert summary["test_accuracy"] >= 0.95
    assert summary["test_accuracy_exact_readout"] == pytest.approx(summary["test_accuracy"], abs=1e-9)


def test_a_rule_is_one_method_and_a_rule_without_it_fails_plainly():
    """Rule.step applies signals(); a subclass without signals() raises, it does not recurse."""
    import pytest

    from hilt.rules import BUILTIN
    from hilt.rules.base import Rule

    class Nothing(Rule):
        name = "nothing"

    with pytest.raises(NotImplementedError, match="rule nothing defines no signals"):
        Nothing().step(None, np.zeros((1, 2), np.float32), None, 0.1)
    for name, cls in BUILTIN.items():
        assert "updates" not in vars(cls), name  # one protocol: signals (and pc's own step)


def test_the_benchmarks_flat_numpy_step_is_hilts_bp_step(rng):
    """`hilt bench` times the exact bp step against a flat NumPy program of it: that program must
    be the same arithmetic (weights, biases, loss and correct count, step after step)."""
    from hilt.experiments.reference.timing import bench_flat, flat_bp_step

    net = build_network("mlp:12-9-7-5", (12,), 5, crossbar_factory(parse_device("exact")), seed=2)
    Ws = [c.W.copy(order="K") for c in net.crossbars()]
    bs = [c.b.copy() for c in net.crossbars()]
    rule = make_rule("bp")
    for _ in range(3):
        x, y = rng.normal(size=(6, 12)).astype(np.float32), rng.integers(0, 5, size=6)
        metrics = rule.step(net, x, y, lr=0.2)
        loss, correct = flat_bp_step(Ws, bs, x, y, lr=0.2)
        assert loss == pytest.approx(metrics["loss_sum"], rel=1e-5) and correct == metrics["correct"]
    for c, W, b in zip(net.crossbars(), Ws, bs):
        np.testing.assert_allclose(c.W, W, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(c.b, b, rtol=1e-5, atol=1e-7)
    result = bench_flat("mlp:12-9-5", 4, 2, 0.1)
    assert result.hilt_ms > 0 and result.reference_ms > 0 and result.ratio > 0
