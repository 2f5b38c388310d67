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


def ep_gradient(net, x, y, n_classes: int, sweeps: int = 400, loss: str = "mse", readout: str = "energy") -> list:
    """dC(s*)/dW of every layer (out x (in + 1), bias last) for equilibrium propagation's network
    (rules/equilibrium.py: ReLU hidden states, linear output, C = mse or ce averaged over the
    batch; `readout` energy or separate), by torch autograd through an odd/even relaxation from a
    feed-forward pass, in float64: with enough sweeps to converge, the gradient at the equilibrium
    that EP estimates. Each layer's map f_l (dense, or torch's conv + max-pool) is torch's own,
    and the feedback into s_l is torch's gradient of s_{l+1} . f_{l+1}(s_l), not hilt's
    transposed read."""
    import torch
    import torch.nn.functional as F

    W = [torch.tensor(backend.to_numpy(c.weights()), dtype=torch.float64, requires_grad=True) for c in net.crossbars()]
    L = len(W)
    top = L - 1 if readout == "separate" else L

    def f(l, h):  # layer l's map (1-based) of the state below it
        block, w, b = net.blocks[l - 1], W[l - 1][:, :-1], W[l - 1][:, -1]
        g = getattr(block.layer, "geometry", None)
        if g is None:
            return h.flatten(1) @ w.T + b
        h = F.conv2d(h, w.reshape(w.shape[0], h.shape[1], g.kernel, g.kernel), b, g.stride, g.padding)
        return F.max_pool2d(h, block.pool.k) if block.pool is not None else h

    def feedback(l, s_l, s_above):  # f_{l+1}'s transpose applied to s_above, at s_l (its switches)
        z = s_l.detach().requires_grad_(True)
        return torch.autograd.grad(f(l + 1, z), z, grad_outputs=s_above, create_graph=True)[0]

    s = [torch.tensor(backend.to_numpy(x), dtype=torch.float64)]
    for l in range(1, L + 1):
        s.append(f(l, s[-1]) if l == L else torch.relu(f(l, s[-1])))
    for _ in range(sweeps):
        for parity in (1, 0):
            for l in range(1 + (1 - parity), top + 1, 2):
                a = f(l, s[l - 1])
                s[l] = torch.relu(a + feedback(l, s[l], s[l + 1])) if l < top else (a if l == L else torch.relu(a))
    out = f(L, s[L - 1])
    if loss == "ce":
        cost = F.cross_entropy(out, torch.as_tensor(backend.to_numpy(y)))
    else:
        target = F.one_hot(torch.as_tensor(backend.to_numpy(y)), n_classes).double()
        cost = 0.5 * ((out - target) ** 2).sum(1).mean()
    cost.backward()
    return [w.grad.numpy() for w in W]
