"""Conv2d (im2col through a crossbar), pooling and activations against torch and autograd."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hilt.analog import layers
from hilt.analog.crossbar import ExactCrossbar
from hilt.analog.layers import Block, Conv1d, Conv2d, Dense
from hilt.analog.periphery import ACTIVATIONS, AvgPool2d, ConvGeometry, MaxPool2d


def conv_layer(rng, C=3, O=4, k=3, stride=1, padding=1, bias=True):
    xb = ExactCrossbar(O, C * k * k, bias)
    W = rng.normal(size=xb.shape).astype(np.float32)
    xb.program(W)
    return Conv2d(xb, ConvGeometry(k, stride, padding)), W


@pytest.fixture(params=["kernels", "rows", "rows-blocked"])
def blocked(request, monkeypatch):
    """The exact crossbar's torch kernels; or its patch rows (im2col), the whole batch's or made one
    sample at a time (PATCH_BLOCK_BYTES below one sample's). True when blocked."""
    if request.param != "kernels":
        monkeypatch.setattr(ExactCrossbar, "conv_kernels", False)
    if request.param == "rows-blocked":
        monkeypatch.setattr(layers, "PATCH_BLOCK_BYTES", {"numpy": 1, "cupy": 1})
    return request.param == "rows-blocked"


@pytest.mark.parametrize("stride,padding,bias", [(1, 1, True), (2, 0, False), (2, 1, True), (1, 0, False)])
def test_conv_matches_torch_and_autograd(rng, stride, padding, bias, blocked):
    layer, W = conv_layer(rng, stride=stride, padding=padding, bias=bias)
    assert len(layer._sample_slices((2, 3, 7, 6))) == (2 if blocked else 1)
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)
    weight = torch.tensor(W[:, :27].reshape(4, 3, 3, 3), requires_grad=True)
    b = torch.tensor(W[:, 27], requires_grad=True) if bias else None
    xt = torch.tensor(x, requires_grad=True)
    yt = F.conv2d(xt, weight, b, stride=stride, padding=padding)
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)

    g = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.backward(g, cache), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    grad = weight.grad.reshape(4, -1).numpy()
    if bias:
        grad = np.concatenate([grad, b.grad.numpy()[:, None]], 1)
    np.testing.assert_allclose(layer.outer(g, cache), grad, rtol=1e-4, atol=1e-4)
    layer.update(g, cache, 0.5)
    np.testing.assert_allclose(layer.crossbar.weights(), W - 0.5 * grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel,stride,padding", [(5, 2, 1), (3, 2, 1), (2, 2, 0), (3, 1, 0)])
def test_conv1d_matches_torch_and_autograd(rng, kernel, stride, padding, blocked):
    xb = ExactCrossbar(4, 3 * kernel, True)
    W = rng.normal(size=xb.shape).astype(np.float32)
    xb.program(W)
    layer = Conv1d(xb, kernel, stride, padding)
    x = rng.normal(size=(2, 3, 17)).astype(np.float32)
    weight = torch.tensor(W[:, :-1].reshape(4, 3, kernel), requires_grad=True)
    b = torch.tensor(W[:, -1], requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.conv1d(xt, weight, b, stride=stride, padding=padding)
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    assert layer.output_shape(x.shape[1:]) == y.shape[1:]

    g = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(layer.backward(g, cache), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    layer.update(g, cache, 0.5)
    grad = np.concatenate([weight.grad.reshape(4, -1).numpy(), b.grad.numpy()[:, None]], 1)
    np.testing.assert_allclose(layer.crossbar.weights(), W - 0.5 * grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pool_cls,torch_pool", [(MaxPool2d, F.max_pool2d), (AvgPool2d, F.avg_pool2d)])
def test_pooling_matches_torch(rng, pool_cls, torch_pool):
    x = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)  # odd height: remainder cropped like torch
    pool = pool_cls(2)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_pool(xt, 2)
    y, cache = pool.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6)
    g = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(pool.backward(g, cache), xt.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_match_autograd(rng, name):
    act = ACTIVATIONS[name]()
    a = rng.normal(size=(50,)).astype(np.float32) * 2
    a = a[np.abs(np.abs(a) - 1) > 1e-3]  # keep away from hardtanh's kinks
    at = torch.tensor(a, requires_grad=True)
    ref = {"identity": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
           "hardtanh": F.hardtanh}[name](at)
    ref.sum().backward()
    np.testing.assert_allclose(act(a), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(act.deriv(a), at.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_block_with_maxpool_routes_through_switches(rng):
    layer, W = conv_layer(rng, padding=1)
    block = Block(layer, ACTIVATIONS["relu"](), MaxPool2d(2))
    x = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    weight = torch.tensor(W[:, :27].reshape(4, 3, 3, 3), requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    at = F.max_pool2d(F.conv2d(xt, weight, torch.tensor(W[:, 27]), padding=1), 2)
    a, cache = block.forward(x)
    np.testing.assert_allclose(a, at.detach().numpy(), rtol=1e-4, atol=1e-4)
    g = rng.normal(size=a.shape).astype(np.float32)
    at.backward(torch.from_numpy(g))
    np.testing.assert_allclose(block.backward(g, cache), xt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_dense_flattens_images_c_major(rng):
    xb = ExactCrossbar(3, 2 * 2 * 2, False)
    W = rng.normal(size=xb.shape).astype(np.float32)
    xb.program(W)
    x = rng.normal(size=(4, 2, 2, 2)).astype(np.float32)
    y, cache = Dense(xb).forward(x)
    np.testing.assert_allclose(y, torch.flatten(torch.from_numpy(x), 1).numpy() @ W.T, rtol=1e-5)
    assert Dense(xb).backward(np.ones((4, 3), np.float32), cache).shape == x.shape


@pytest.mark.parametrize("pool", [None, MaxPool2d(2), AvgPool2d(2)])
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_block_output_shape_is_the_forward_shape(rng, pool, stride, padding):
    layer, _ = conv_layer(rng, stride=stride, padding=padding)
    block = Block(layer, ACTIVATIONS["relu"](), pool)
    x = rng.normal(size=(2, 3, 9, 7)).astype(np.float32)
    assert block.output_shape(x.shape[1:]) == block.forward(x)[0].shape[1:]
    dense = Block(Dense(ExactCrossbar(5, 3 * 9 * 7)), ACTIVATIONS["relu"]())
    assert dense.output_shape(x.shape[1:]) == dense.forward(x)[0].shape[1:]


@pytest.mark.parametrize("model,shape,rule", [("cnn:4-8", (1, 8, 8), "bp"), ("cnn:4-8", (1, 8, 8), "dp_adjoint"),
                                              ("cnn:4-8", (1, 8, 8), "ep"), ("cnn1d:5-6", (1, 40), "bp"),
                                              ("rhm-cnn:6", (4, 8), "dfa"), ("vgg6@0.0625", (3, 16, 16), "bp"),
                                              ("vgg6@0.0625", (3, 16, 16), "clapp_pp")])
def test_torch_kernels_give_the_numbers_and_counts_of_patch_rows(monkeypatch, model, shape, rule):
    """One training step of a conv net on the exact crossbar's torch kernels and on its im2col rows:
    the same weights within float32 rounding, the same counts."""
    from hilt.analog.network import build_network, crossbar_factory
    from hilt.devices import parse_device
    from hilt.rules import make_rule

    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, *shape)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    after = []
    for kernels in (True, False):
        monkeypatch.setattr(ExactCrossbar, "conv_kernels", kernels)
        factory = crossbar_factory(parse_device("exact"))
        r = make_rule(rule)
        readout = not r.self_supervised
        net = build_network(model, shape, 5, factory, seed=1, readout=readout)
        r.attach(net, factory, np.random.default_rng(1))
        if r.self_supervised:
            from hilt.data.pairs import Pairs, next_row

            batch = Pairs(x, x[::-1].copy(), next_row(12))
        else:
            batch = x
        r.step(net, batch, y, 0.05)
        after.append(([c.weights() for c in net.crossbars()], net.take_counts()))
    for k, (a, b) in enumerate(zip(after[0][0], after[1][0])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5, err_msg=f"layer {k + 1}")
    assert after[0][1] == after[1][1]
