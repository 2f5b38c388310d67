"""The same network in plain torch: its crossbars' weights as torch parameters and a forward pass
with torch's own conv, pooling and ReLU (a reference for tests and the conv bench)."""

from __future__ import annotations

from hilt.analog import backend


def torch_twin(net, device: str = "cpu", dtype=None):
    """(params, forward): one (out, in + 1) tensor per crossbar, bias in the last column."""
    import torch
    import torch.nn.functional as F

    params = [torch.tensor(backend.to_numpy(c.weights()), device=device, dtype=dtype, requires_grad=True)
              for c in net.crossbars()]

    def forward(x):
        h = x
        for k, (block, W) in enumerate(zip(net.blocks, params)):
            w, b = W[:, :-1], W[:, -1]
            g = getattr(block.layer, "geometry", None)
            if g is not None and g.dims == 1:
                h = F.conv1d(h, w.reshape(w.shape[0], h.shape[1], g.kernel), b, g.stride, g.padding)
            elif g is not None:
                h = F.conv2d(h, w.reshape(w.shape[0], h.shape[1], g.kernel, g.kernel), b, g.stride, g.padding)
            else:
                h = h.flatten(1) @ w.T + b
            if block.pool is not None:
                h = F.max_pool2d(h, block.pool.k)
            if k < len(net.blocks) - 1:
                h = torch.relu(h)
        return h

    return params, forward


def ep_gradient(net, x, y, n_classes: int, sweeps: int = 400) -> list:
    """dC(s*)/dW of every layer (out x (in + 1), bias last) for equilibrium propagation's network
    (rules/equilibrium.py: ReLU hidden states, linear output, mse C averaged over the batch), by
    torch autograd through the same odd/even relaxation from a feed-forward pass, in float64: with
    enough sweeps to converge, the gradient at the equilibrium that EP estimates."""
    import torch

    W = [torch.tensor(backend.to_numpy(c.weights()), dtype=torch.float64, requires_grad=True) for c in net.crossbars()]
    L = len(W)
    s = [torch.tensor(backend.to_numpy(x), dtype=torch.float64).flatten(1)]
    for w in W:
        a = s[-1] @ w[:, :-1].T + w[:, -1]
        s.append(a if len(s) == L else torch.relu(a))
    for _ in range(sweeps):
        for parity in (1, 0):
            for l in range(1 + (1 - parity), L + 1, 2):
                a = s[l - 1] @ W[l - 1][:, :-1].T + W[l - 1][:, -1]
                s[l] = torch.relu(a + s[l + 1] @ W[l][:, :-1]) if l < L else a
    target = torch.nn.functional.one_hot(torch.as_tensor(backend.to_numpy(y)), n_classes).double()
    (0.5 * ((s[L] - target) ** 2).sum(1).mean()).backward()
    return [w.grad.numpy() for w in W]
