"""Weight layers on crossbars and the blocks a network is made of.

Dense and Conv2d turn their input into the rows a crossbar reads (a flattened batch; im2col
patches) so that forward, transposed read and update of either are the same three crossbar
primitives. A Block is one weight layer, an optional pool after it and an activation:

    a = pool(W x + b),   s = act(a)

Blocks expose the operator a(x) and its transpose; rules apply the activation themselves.
"""

from __future__ import annotations

from analog.crossbar import Crossbar
from analog.periphery import Activation, AvgPool2d, ConvGeometry, MaxPool2d, col2im, im2col


class Dense:
    """y = W x for any input shape (flattened C-major per sample)."""

    def __init__(self, crossbar: Crossbar):
        self.crossbar = crossbar

    def forward(self, x):
        rows = x.reshape(x.shape[0], -1)
        return self.crossbar.forward(rows), (rows, x.shape)

    def _g_rows(self, g):
        return g

    def backward(self, g, cache):
        _, in_shape = cache
        return self.crossbar.backward(self._g_rows(g)).reshape(in_shape)

    def update(self, g, cache, lr):
        rows, _ = cache
        self.crossbar.update(rows, self._g_rows(g), lr)


class Conv2d(Dense):
    """Convolution as im2col patches through a (out_channels, C*k*k) crossbar."""

    def __init__(self, crossbar: Crossbar, geometry: ConvGeometry):
        super().__init__(crossbar)
        self.geometry = geometry

    def forward(self, x):
        B, _, H, W = x.shape
        Ho, Wo = self.geometry.out_hw(H, W)
        rows = im2col(x, self.geometry)
        y = self.crossbar.forward(rows).reshape(B, Ho, Wo, -1).transpose(0, 3, 1, 2)
        return y, (rows, x.shape)

    def _g_rows(self, g):
        return g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])

    def backward(self, g, cache):
        _, in_shape = cache
        return col2im(self.crossbar.backward(self._g_rows(g)), self.geometry, in_shape)


class Block:
    def __init__(self, layer: Dense, act: Activation, pool: MaxPool2d | AvgPool2d | None = None):
        self.layer, self.act, self.pool = layer, act, pool

    @property
    def crossbar(self) -> Crossbar:
        return self.layer.crossbar

    def forward(self, x):
        """Pre-activation a = pool(W x) and the cache (layer input, pool switches) rules need."""
        z, layer_cache = self.layer.forward(x)
        if self.pool is None:
            return z, (layer_cache, None)
        a, pool_cache = self.pool.forward(z)
        return a, (layer_cache, pool_cache)

    def _g_z(self, g_a, cache):
        return g_a if self.pool is None else self.pool.backward(g_a, cache[1])

    def backward(self, g_a, cache):
        """Transpose of the operator: dL/dx from dL/da (routed through the cached switches)."""
        return self.layer.backward(self._g_z(g_a, cache), cache[0])

    def update(self, g_a, cache, lr):
        """W <- W - lr * sum_b g_z x^T, with g_z = dL/d(Wx) routed through the cached switches."""
        self.layer.update(self._g_z(g_a, cache), cache[0], lr)
