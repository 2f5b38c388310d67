"""vgg6 (CLAPP++ Table A1) and vgg16 (Two Tales) model specs: architecture, init, and one step of
bp, dp_adjoint and clapp_pp on the exact path (bp against autograd is in test_bp)."""

import numpy as np
import pytest

from hilt.analog.network import build_network, crossbar_factory
from hilt.data.pairs import Pairs, next_row
from hilt.devices import parse_device
from hilt.rules import make_rule

EXACT = crossbar_factory(parse_device("exact"))


def conv_channels_and_pools(net):
    return [(b.crossbar.out_size, b.pool is not None) for b in net.blocks if hasattr(b.layer, "geometry")]


def test_vgg16_is_the_two_tales_network():
    net = build_network("vgg16@0.0625", (3, 32, 32), 10, EXACT)
    pools = {2, 4, 7, 10, 13}
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert conv_channels_and_pools(net) == [(w // 16, k in pools) for k, w in enumerate(widths, 1)]
    dense = [b.crossbar.shape for b in net.blocks[13:]]
    assert dense == [(256, 32 + 1), (256, 256 + 1), (10, 256 + 1)]  # flatten = 512/16 channels x 1 x 1
    assert [b.act.name for b in net.blocks] == ["relu"] * 15 + ["identity"]


def test_vgg6_is_the_clapp_encoder():
    net = build_network("vgg6@0.0625", (3, 32, 32), 10, EXACT, readout=False)
    assert conv_channels_and_pools(net) == [(8, False), (16, True), (16, False), (32, True), (64, True), (64, True)]
    assert net.shapes()[-1] == (64, 2, 2)  # Wu et al. 2026, Table A1: 2x2 maps after layer 6 on CIFAR


def test_vgg16_init_is_lecun_normal_with_zero_bias():
    net = build_network("vgg16@0.25", (3, 32, 32), 10, EXACT, seed=2)
    W = net.blocks[1].crossbar.weights()  # 16 -> 16 channels, fan-in 144
    assert np.all(W[:, -1] == 0)
    assert abs(W[:, :-1].std() * np.sqrt(144) - 1) < 0.05 and np.abs(W[:, :-1]).max() <= 2 / np.sqrt(144) / 0.8796 + 1e-6
    other = build_network("vgg6@0.25", (3, 16, 16), 10, EXACT, seed=2).blocks[1].crossbar.weights()
    assert np.any(other[:, -1] != 0)  # vgg6 keeps torch's uniform init (Wu et al. 2026, Table A1)


def moved(before, net):
    return [not np.array_equal(b, c.weights()) for b, c in zip(before, net.crossbars())]


@pytest.mark.parametrize("model,shape", [("vgg6@0.0625", (3, 16, 16)), ("vgg16@0.0625", (3, 32, 32))])
@pytest.mark.parametrize("rule_name", ["bp", "dp_adjoint", "clapp_pp"])
def test_one_step_of_each_rule_trains_every_layer(rng, model, shape, rule_name):
    rule = make_rule(rule_name)
    net = build_network(model, shape, 10, EXACT, seed=0, readout=not rule.self_supervised)
    rule.attach(net, EXACT, np.random.default_rng(0))
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    batch = Pairs(x, x + 0.1 * rng.normal(size=x.shape).astype(np.float32), next_row(8)) if rule.self_supervised else x
    before = [c.weights().copy() for c in net.crossbars()]
    metrics = rule.step(net, batch, y, lr=0.01)
    assert np.isfinite(metrics["loss_sum"])
    assert all(moved(before, net))
