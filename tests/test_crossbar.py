"""ExactCrossbar and its optimizers against plain NumPy / torch.optim."""

import numpy as np
import pytest
import torch

from hilt.analog.crossbar import ExactCrossbar
from hilt.analog.optim import make_optimizer


def make(rng, out=5, inp=7, bias=True, optimizer=None):
    xb = ExactCrossbar(out, inp, bias, optimizer)
    W = rng.normal(size=xb.shape).astype(np.float32)
    xb.program(W)
    return xb, W


@pytest.mark.parametrize("bias", [False, True])
def test_forward_backward_update_match_numpy(rng, bias):
    xb, W = make(rng, bias=bias)
    x = rng.normal(size=(4, 7)).astype(np.float32)
    d = rng.normal(size=(4, 5)).astype(np.float32)
    x1 = np.concatenate([x, np.ones((4, 1), np.float32)], 1) if bias else x
    np.testing.assert_allclose(xb.forward(x), x1 @ W.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xb.backward(d), d @ W[:, :7], rtol=1e-5, atol=1e-5)
    xb.update(x, d, 0.1)
    np.testing.assert_allclose(xb.weights(), W - 0.1 * d.T @ x1, rtol=1e-5, atol=1e-5)


def test_update_sums_over_batch_and_rejects_bad_lr(rng):
    xb, W = make(rng, bias=False)
    x = np.ones((3, 7), np.float32)
    d = np.ones((3, 5), np.float32)
    xb.update(x, d, 1.0)
    np.testing.assert_allclose(xb.weights(), W - 3.0, atol=1e-5)  # sum, not mean
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="lr > 0"):
            xb.update(x, d, bad)


def test_program_checks_shape(rng):
    xb, _ = make(rng)
    with pytest.raises(ValueError, match="shape"):
        xb.program(np.zeros((5, 7), np.float32))  # bias column missing


@pytest.mark.parametrize(
    "name,kwargs,torch_cls,torch_kwargs",
    [
        ("sgd", dict(momentum=0.9, weight_decay=1e-2), torch.optim.SGD, dict(momentum=0.9, weight_decay=1e-2)),
        ("adam", dict(weight_decay=1e-2), torch.optim.Adam, dict(weight_decay=1e-2)),
        ("adamw", dict(weight_decay=1e-2), torch.optim.AdamW, dict(weight_decay=1e-2)),
    ],
)
@pytest.mark.parametrize("blocks", [1, 3])
def test_optimizers_match_torch(rng, name, kwargs, torch_cls, torch_kwargs, blocks):
    """One optimizer step per batch, also when the batch's rows come in blocks (update_groups)."""
    xb, W = make(rng, optimizer=make_optimizer(name, **kwargs))
    w = torch.tensor(W[:, :7].copy(), requires_grad=True)
    b = torch.tensor(W[:, 7].copy(), requires_grad=True)
    opt = torch_cls([w, b], lr=0.01, **torch_kwargs)
    for _ in range(4):
        x = rng.normal(size=(6, 7)).astype(np.float32)
        d = rng.normal(size=(6, 5)).astype(np.float32)
        if blocks == 1:
            xb.update(x, d, 0.01)
        else:
            xb.update_groups(zip(np.array_split(x, blocks), np.array_split(d, blocks)), 0.01)
        opt.zero_grad()
        # d(sum_b d_b . (W x_b + b))/dW = d^T x: the crossbar's batch-summed gradient.
        (torch.from_numpy(d) * (torch.from_numpy(x) @ w.T + b)).sum().backward()
        opt.step()
    expected = torch.cat([w, b[:, None]], 1).detach().numpy()
    np.testing.assert_allclose(xb.weights(), expected, rtol=1e-4, atol=1e-5)
