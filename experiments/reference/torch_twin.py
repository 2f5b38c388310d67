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
