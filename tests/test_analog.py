"""The aihwkit backend: ideal equals exact; non-idealities are really switched on."""

import numpy as np
import pytest

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.crossbar import ExactCrossbar
from hilt.analog.layers import Conv2d
from hilt.analog.periphery import ConvGeometry
from hilt.devices import parse_device


def pair(rng, out, inp, bias, sets=()):
    spec = parse_device("ideal", list(sets))
    W = (rng.normal(size=(out, inp + bias)) * 0.3).astype(np.float32)
    exact, analog = ExactCrossbar(out, inp, bias), AnalogCrossbar(out, inp, bias, spec)
    exact.program(W)
    analog.program(W)
    return exact, analog


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape,sets", [((6, 9), ()), ((13, 21), ("tile_size=8",)), ((7, 5), ("weight_scaling_omega=0.5",))])
def test_ideal_reproduces_exact_dense(rng, bias, shape, sets):
    exact, analog = pair(rng, *shape, bias, sets)
    if "tile_size=8" in sets:
        assert len(analog.row_splits) == 2 and len(analog.col_splits) == 3  # really split
    for _ in range(3):
        x = rng.normal(size=(5, shape[1])).astype(np.float32)
        d = rng.normal(size=(5, shape[0])).astype(np.float32)
        np.testing.assert_allclose(analog.forward(x), exact.forward(x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(analog.backward(d), exact.backward(d), rtol=1e-5, atol=1e-5)
        exact.update(x, d, 0.05)
        analog.update(x, d, 0.05)
        np.testing.assert_allclose(analog.weights(), exact.weights(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_ideal_reproduces_exact_conv(rng, bias):
    exact, analog = pair(rng, 4, 3 * 9, bias, ("tile_size=16",))
    geo = ConvGeometry(3, 1, 1)
    ce, ca = Conv2d(exact, geo), Conv2d(analog, geo)
    x = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    ye, cache_e = ce.forward(x)
    ya, cache_a = ca.forward(x)
    np.testing.assert_allclose(ya, ye, rtol=1e-5, atol=1e-5)
    g = rng.normal(size=ye.shape).astype(np.float32)
    np.testing.assert_allclose(ca.backward(g, cache_a), ce.backward(g, cache_e), rtol=1e-5, atol=1e-5)
    ce.update(g, cache_e, 0.01)
    ca.update(g, cache_a, 0.01)
    np.testing.assert_allclose(analog.weights(), exact.weights(), rtol=1e-5, atol=1e-5)


def test_conv_blocks_of_samples_read_and_update_as_the_whole_batch(rng, monkeypatch):
    """Patches made one sample at a time (PATCH_BLOCK_BYTES below one sample's) on a noise-free,
    saturating analog crossbar: the same reads, the same saturation masks routed into the
    transposed read, and the same update as the whole batch at once."""
    from hilt.analog import layers

    spec = parse_device("ideal", ["read_noise=0", "weight_scaling_omega=0"])
    W = (rng.normal(size=(4, 3 * 9 + 1)) * 0.3).astype(np.float32)
    x = (20 * rng.uniform(0, 1, (3, 3, 5, 5))).astype(np.float32)
    results = []
    for block_bytes in (2**30, 1):
        monkeypatch.setattr(layers, "PATCH_BLOCK_BYTES", {"numpy": block_bytes})
        xbar = AnalogCrossbar(4, 27, True, spec)
        xbar.program(W)
        conv = Conv2d(xbar, ConvGeometry(3, 1, 1))
        y, cache = conv.forward(x)
        g = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
        z = conv.backward(g, cache)
        conv.update(g, cache, 0.01)
        results.append((y, cache.clipped, z, xbar.weights()))
    (y1, clip1, z1, w1), (y3, clip3, z3, w3) = results
    assert len(clip1) == 1 and len(clip3) == 3  # one saturation map per block of samples
    saturated = np.mean([m.mean() for m in clip1[0].values()])
    assert 0.05 < saturated < 0.95
    np.testing.assert_allclose(y3, y1, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(z3, z1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w3, w1, rtol=1e-5, atol=1e-5)
    assert np.abs(z1).max() > 0 and np.abs(w1 - W).max() > 1e-3


def noisy(rng, sets, shape=(8, 16), device="rram"):
    xb = AnalogCrossbar(*shape, True, parse_device(device, list(sets)))
    W = (rng.normal(size=xb.shape) * 0.2).astype(np.float32)
    xb.program(W)
    return xb


def test_read_noise_is_on_and_grows_with_read_noise(rng):
    x = np.tile(rng.uniform(0, 1, size=(1, 16)).astype(np.float32), (400, 1))
    spreads = []
    for level in (0.02, 0.2):
        xb = noisy(rng, [f"read_noise={level}", "adc_bits=0", "dac_bits=0"])
        y = xb.forward(x)
        assert not np.allclose(y[0], y[1])  # repeated reads of the same input differ
        spreads.append(y.std(axis=0).mean())
    assert spreads[1] > 5 * spreads[0]


def test_backward_read_noise_only_touches_the_transposed_read(rng):
    xb = noisy(rng, ["read_noise=0", "backward_read_noise=0.3", "adc_bits=0", "dac_bits=0"])
    x = np.tile(rng.uniform(0, 1, size=(1, 16)).astype(np.float32), (50, 1))
    d = np.tile(rng.normal(size=(1, 8)).astype(np.float32), (50, 1))
    assert xb.forward(x).std(axis=0).max() < 1e-5
    assert xb.backward(d).std(axis=0).mean() > 1e-2


def test_fewer_adc_bits_give_fewer_distinct_outputs(rng):
    x = rng.uniform(0, 1, size=(300, 16)).astype(np.float32)
    counts = {}
    for bits in (3, 8):
        xb = noisy(rng, [f"adc_bits={bits}", "read_noise=0", "dac_bits=0"])
        counts[bits] = len(np.unique(np.round(xb.forward(x), 6)))
    assert counts[3] < counts[8] / 4


def test_pulsed_update_mean_approaches_ideal(rng):
    spec = parse_device("idealized", ["read_noise=0", "dw_min_dtod=0"])  # no systematic per-device bias
    x = rng.uniform(0, 1, size=(4, 16)).astype(np.float32)
    d = (rng.normal(size=(4, 8)) * 0.01).astype(np.float32)
    ideal = -0.05 * d.T @ x
    xb = AnalogCrossbar(8, 16, False, spec)
    xb.program(np.zeros((8, 16), np.float32))
    single = xb.weights()
    xb.update(x, d, 0.05)
    single = xb.weights() - single
    total, repeats = np.zeros_like(ideal), 200
    for _ in range(repeats):
        before = xb.weights()
        xb.update(x, d, 0.05)
        total += xb.weights() - before
    mean = total / repeats
    err_single = np.linalg.norm(single - ideal) / np.linalg.norm(ideal)
    err_mean = np.linalg.norm(mean - ideal) / np.linalg.norm(ideal)
    assert err_mean < 0.1 and err_mean < err_single / 3


def test_weight_scaling_uses_the_device_range(rng):
    W = (rng.uniform(-1, 1, size=(8, 17)) * 0.05).astype(np.float32)
    xb = AnalogCrossbar(8, 16, True, parse_device("ideal", ["weight_scaling_omega=0.8"]))
    xb.program(W)
    assert np.isclose(xb.scale, np.abs(W).max() / 0.8)
    device_max = max(float(t.get_weights()[0].abs().max()) for row in xb.tiles for t in row)
    assert np.isclose(device_max, 0.8, atol=0.01)  # largest weight sits at omega on the device
    np.testing.assert_allclose(xb.weights(), W, rtol=1e-5, atol=1e-7)


def test_decay_device_gets_post_update_step(rng):
    xb = noisy(rng, ["read_noise=0"], device="capacitor")
    before = np.abs(xb.weights()).mean()
    x = np.zeros((1, 16), np.float32)
    d = np.zeros((1, 8), np.float32)
    for _ in range(2000):
        xb.update(x, d, 0.01)  # no pulses: only the leak acts
    assert np.abs(xb.weights()).mean() < 0.999 * before
