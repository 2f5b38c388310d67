"""Weight layers on crossbars and the blocks a network is made of.

Dense and Conv2d turn their input into the rows a crossbar reads (a flattened batch; im2col
patches) so that forward, transposed read and update of either are the same three crossbar
primitives. A Block is one weight layer, an optional pool after it and an activation:

    a = pool(W x + b),   s = act(a)

Blocks expose the operator a(x) and its transpose; rules apply the activation themselves.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from analog import backend
from analog.crossbar import Crossbar, exact_copy
from analog.optim import outer
from analog.periphery import Activation, AvgPool2d, ConvGeometry, MaxPool2d, col2im, im2col


class LayerCache(NamedTuple):
    """What a layer keeps of a read: the crossbar rows (or, for a convolution, its input, from which
    the im2col rows are made again when needed: 9x smaller for 3x3 kernels, so a step holds one
    layer's patches at a time), the input shape, and where the forward read was at its output bound
    (None: nowhere, or no forward read was made, as in `Block.cache_for`)."""

    rows: Any
    in_shape: tuple
    clipped: Any = None
    x: Any = None


class Dense:
    """y = W x for any input shape (flattened C-major per sample)."""

    def __init__(self, crossbar: Crossbar):
        self.crossbar = crossbar

    def input_cache(self, x) -> LayerCache:
        """The layer's cache for input x without a read: the crossbar rows and the input shape."""
        return LayerCache(x.reshape(x.shape[0], -1), x.shape)

    def rows(self, cache: LayerCache):
        """The crossbar rows of the cached input."""
        return cache.rows

    def forward(self, x):
        cache = self.input_cache(x)
        y, clipped = self.crossbar.forward_clipped(self.rows(cache))
        return y, cache._replace(clipped=clipped)

    def exact_copy(self, bias: bool = True):
        """This layer on an ExactCrossbar holding the current (read-out) weights; bias=False drops b."""
        layer = copy.copy(self)
        layer.crossbar = exact_copy(self.crossbar, bias)
        return layer

    def output_shape(self, in_shape):
        """Per-sample shape of the crossbar output for per-sample input shape `in_shape`."""
        return (self.crossbar.out_size,)

    def _g_rows(self, g):
        return g

    def outer(self, g, cache):
        """The batch-summed update this layer's crossbar would receive: g_rows^T rows (+ bias column)."""
        rows, g_rows = self.rows(cache), self._g_rows(g)
        G = outer(g_rows, rows)
        if self.crossbar.bias:
            G = backend.xp().concatenate([G, g_rows.sum(axis=0)[:, None]], axis=1)
        return G

    def backward(self, g, cache):
        return self.crossbar.backward(self._g_rows(g), cache.clipped).reshape(cache.in_shape)

    def update(self, g, cache, lr):
        self.crossbar.update(self.rows(cache), self._g_rows(g), lr)


class Conv2d(Dense):
    """Convolution as im2col patches through a (out_channels, C*k*k) crossbar."""

    def __init__(self, crossbar: Crossbar, geometry: ConvGeometry):
        super().__init__(crossbar)
        self.geometry = geometry

    def input_cache(self, x) -> LayerCache:
        return LayerCache(None, x.shape, x=x)

    def rows(self, cache: LayerCache):
        return im2col(cache.x, self.geometry)

    def output_shape(self, in_shape):
        return (self.crossbar.out_size, *self.geometry.out_hw(*in_shape[1:]))

    def forward(self, x):
        B, _, H, W = x.shape
        Ho, Wo = self.geometry.out_hw(H, W)
        y, cache = super().forward(x)
        return y.reshape(B, Ho, Wo, -1).transpose(0, 3, 1, 2), cache

    def _g_rows(self, g):
        return g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])

    def backward(self, g, cache):
        return col2im(self.crossbar.backward(self._g_rows(g), cache.clipped), self.geometry, cache.in_shape)


class Conv1d(Dense):
    """1-D convolution of (B, C, L) signals, (B, C, L) -> (B, out, Lo): im2col of the signal as a
    (B, C, 1, L) image with a 1 x k kernel. kernel = stride = s is the RHM's CNN (SPECS 3.2): each
    window of s positions of all input channels is one crossbar row."""

    def __init__(self, crossbar: Crossbar, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__(crossbar)
        self.geometry = ConvGeometry(kernel, stride, padding, dims=1)

    def input_cache(self, x) -> LayerCache:
        return LayerCache(None, x.shape, x=x)

    def rows(self, cache: LayerCache):
        return im2col(cache.x[:, :, None, :], self.geometry)

    def output_shape(self, in_shape):
        return (self.crossbar.out_size, self.geometry.out_hw(1, in_shape[1])[1])

    def forward(self, x):
        y, cache = super().forward(x)
        return y.reshape(x.shape[0], -1, y.shape[1]).transpose(0, 2, 1), cache

    def _g_rows(self, g):
        return g.transpose(0, 2, 1).reshape(-1, g.shape[1])

    def backward(self, g, cache):
        B, C, L = cache.in_shape
        rows = self.crossbar.backward(self._g_rows(g), cache.clipped)
        return col2im(rows, self.geometry, (B, C, 1, L))[:, :, 0, :]


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

    def cache_for(self, x):
        """The cache of `forward(x)`; reads the crossbar only when max-pool switches are needed."""
        if isinstance(self.pool, MaxPool2d):
            return self.forward(x)[1]
        if self.pool is None:
            return self.layer.input_cache(x), None
        return self.layer.input_cache(x), (x.shape[0], *self.layer.output_shape(x.shape[1:]))  # avg-pool: shape only

    def output_shape(self, in_shape):
        """Per-sample shape of a = pool(W x) for per-sample input shape `in_shape`."""
        shape = self.layer.output_shape(in_shape)
        if self.pool is None:
            return shape
        C, H, W = shape
        return (C, H // self.pool.k, W // self.pool.k)

    def _g_z(self, g_a, cache):
        return g_a if self.pool is None else self.pool.backward(g_a, cache[1])

    def backward(self, g_a, cache):
        """Transpose of the operator: dL/dx from dL/da (routed through the cached switches)."""
        return self.layer.backward(self._g_z(g_a, cache), cache[0])

    def update(self, g_a, cache, lr):
        """W <- W - lr * sum_b g_z x^T, with g_z = dL/d(Wx) routed through the cached switches."""
        self.layer.update(self._g_z(g_a, cache), cache[0], lr)

    def outer(self, g_a, cache):
        """The matrix `update` descends along (digital; for metrics such as alignment)."""
        return self.layer.outer(self._g_z(g_a, cache), cache[0])
