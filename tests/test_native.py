"""hilt's bp on the aihwkit backend against aihwkit's own training loop (AnalogSequential + AnalogSGD)."""

import numpy as np
import torch

from hilt.devices import parse_device
from hilt.experiments.reference.native import native_model
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build


def bp_steps_both_ways(sets, input_scale, steps=3):
    """hilt's bp and aihwkit's AnalogSGD from the same init on the same batch: (hilt, native, init) weights."""
    from aihwkit.optim import AnalogSGD

    setup = build(TrainConfig(device="ideal", sets=sets, model="mlp:64-24-10", seed=3, out="unused"))
    net, data = setup.net, setup.data
    init = [np.asarray(b.crossbar.weights()) for b in net.blocks]
    model = native_model(net, parse_device("ideal", sets, seed=3), seed=0, init_weights=init)
    opt = AnalogSGD(model.parameters(), lr=0.05)
    opt.regroup_param_groups(model)
    lins = [m for m in model if type(m).__name__ == "AnalogLinear"]
    for lin, W in zip(lins, init):  # the native tiles really hold hilt's init
        w, b = lin.get_weights()
        np.testing.assert_allclose(np.c_[w.numpy(), b.numpy()], W, atol=1e-6)
        assert next(lin.analog_tiles()).analog_bias  # an analog bias column, as hilt's

    x, y = input_scale * data.x_train[:16].reshape(16, -1), data.y_train[:16]
    for _ in range(steps):
        setup.rule.step(net, x, y, 0.05)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    native = [np.c_[tuple(t.numpy() for t in lin.get_weights())] for lin in lins]
    return [np.asarray(b.crossbar.weights()) for b in net.blocks], native, init, net, x


def test_bp_on_ideal_matches_aihwkit_analog_sgd_from_the_same_init():
    hilt, native, init, _, _ = bp_steps_both_ways([], 1.0)
    for h, n, w0 in zip(hilt, native, init):
        assert np.abs(h - w0).max() > 1e-3  # the steps moved the weights
        np.testing.assert_allclose(h, n, atol=1e-5)


def test_saturated_reads_carry_no_gradient_as_in_aihwkit(monkeypatch):
    """Noise-free but non-perfect IO (read_noise=0) and inputs x20: many logits pass the forward
    output bound (out_bound 12 * 0.999), where aihwkit's AnalogFunction zeroes their gradient."""
    hilt, native, init, net, x = bp_steps_both_ways(["read_noise=0"], 20.0)
    a, _ = net.blocks[0].layer.forward(x)
    assert net.blocks[1].layer.forward(np.maximum(a, 0))[1].clipped is not None  # the logits saturate
    for h, n, w0 in zip(hilt, native, init):
        assert np.isfinite(h).all() and np.abs(h - w0).max() > 1e-3
        np.testing.assert_allclose(h, n, atol=1e-5)

    from hilt.analog.analog_crossbar import AnalogCrossbar

    monkeypatch.setattr(AnalogCrossbar, "_note_clipped", lambda *args: None)  # the rule without the mask
    hilt, native, *_ = bp_steps_both_ways(["read_noise=0"], 20.0)
    assert np.abs(hilt[0] - native[0]).max() > 1e-3


def test_split_crossbar_reads_match_aihwkit_tile_array():
    """A 24 x 40 layer on 16-wide tiles (a 2 x 3 grid) against aihwkit's TileModuleArray: the same
    split sizes, and with noise-free non-perfect IO and inputs large enough that some tiles saturate,
    the forward read and the transposed read through the saturation map equal aihwkit's autograd.
    Without weight scaling and bias: aihwkit's array scales each tile on its own and keeps the bias
    digital, where hilt has one scale per crossbar and an analog bias column (README)."""
    from aihwkit.nn import AnalogLinear

    from hilt.analog.layers import Dense
    from hilt.analog.network import crossbar_factory

    spec = parse_device("ideal", ["read_noise=0", "tile_size=16", "weight_scaling_omega=0"], seed=0)
    rng = np.random.default_rng(0)
    W0 = rng.uniform(-0.16, 0.16, (24, 40)).astype(np.float32)
    layer = Dense(crossbar_factory(spec)(24, 40, False))
    layer.crossbar.program(W0)
    cfg = spec.rpu_config()
    cfg.mapping.max_input_size = cfg.mapping.max_output_size = 16
    lin = AnalogLinear(40, 24, bias=False, rpu_config=cfg)
    lin.set_weights(torch.from_numpy(W0))
    native_grid = [(t.out_size, t.in_size) for t in lin.analog_tiles()]
    hilt_grid = [(t.out_size, t.in_size) for col in zip(*layer.crossbar.tiles) for t in col]
    assert hilt_grid == native_grid == [(12, 14), (12, 14), (12, 13), (12, 13), (12, 13), (12, 13)]

    x = (60 * rng.uniform(0, 1, (5, 40))).astype(np.float32)
    g = rng.standard_normal((5, 24)).astype(np.float32)
    y, cache = layer.forward(x)
    clipped = np.mean([m.mean() for m in cache.clipped.values()]) if cache.clipped else 0.0
    assert 0.05 < clipped < 0.95  # some outputs saturate, not all
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = lin(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(layer.backward(g, cache), xt.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_native_convnet_reads_as_hilts():
    """The native counterpart of a convnet (AnalogConv2d, max-pool, ReLU, flatten, AnalogLinear)
    from hilt's weights computes hilt's forward on an ideal device."""
    setup = build(TrainConfig(device="ideal", dataset="digits", model="cnn:3-4", seed=1, out="unused"))
    net = setup.net
    init = [np.asarray(b.crossbar.weights()) for b in net.blocks]
    model = native_model(net, parse_device("ideal", seed=1), init_weights=init)
    x = setup.data.x_test[:7]
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), net.forward(x), atol=1e-5)
