"""Weight layers on crossbars and the blocks a network is made of.

Dense and Conv2d turn their input into the rows a crossbar reads (a flattened batch; im2col
patches) so that forward, transposed read and update of either are the same three crossbar
primitives. A Block is one weight layer, an optional pool after it and an activation:

    a = pool(W x + b),   s = act(a)

Blocks expose the operator a(x) and its transpose; rules apply the activation themselves.
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import numpy as np

from hilt.analog import backend
from hilt.analog.crossbar import Crossbar, exact_copy
from hilt.analog.optim import gradient_matrix
from hilt.analog.periphery import Activation, AvgPool2d, ConvGeometry, MaxPool2d, col2im, im2col


# The most bytes of im2col patches a convolution makes at once, per array backend: reads,
# transposed reads and updates go block of samples by block of samples past this. On the CPU small
# blocks stay in cache (vgg16 bp, batch 100: 8 MiB blocks step in 3.0 s at a 299 MiB peak, whole
# layers in 4.1 s at 527 MiB); on a GPU large blocks keep the kernels large.
PATCH_BLOCK_BYTES = {"numpy": 8 * 2**20, "cupy": 512 * 2**20}


class LayerCache(NamedTuple):
    """What a layer keeps of a read: the crossbar rows (or, for a convolution, its input, from which
    the im2col rows are made again block by block when needed: 9x smaller for 3x3 kernels), the
    input shape, and where the forward read was at its output bound (None: nowhere, or no forward
    read was made, as in `Block.cache_for`; for a convolution, one entry per block of samples)."""

    rows: Any
    in_shape: tuple
    clipped: Any = None
    x: Any = None


class WeightLayer:
    """What Dense and Conv2d share: a crossbar, the batch's update through it and its exact copy.
    Each layer says how its input becomes crossbar rows (`input_cache`, `forward`, `row_groups`)
    and how a transposed read becomes an input gradient (`backward`)."""

    def __init__(self, crossbar: Crossbar):
        self.crossbar = crossbar

    def exact_copy(self, bias: bool = True):
        """This layer on an ExactCrossbar holding the current (read-out) weights; bias=False drops b."""
        layer = copy.copy(self)
        layer.crossbar = exact_copy(self.crossbar, bias)
        return layer

    def outer(self, g, cache):
        """The batch-summed update this layer's crossbar would receive: g_rows^T rows (+ bias column)."""
        return gradient_matrix(self.row_groups(g, cache), self.crossbar.bias)

    def input_cache(self, x) -> LayerCache:
        """The layer's cache for input x (batch-first) without a read."""
        raise NotImplementedError

    def output_shape(self, in_shape) -> tuple:
        """The per-sample output shape for a per-sample input shape."""
        raise NotImplementedError

    def forward(self, x):
        """Forward read of input x (batch x input shape): (output, cache), output batch x output shape."""
        raise NotImplementedError

    def row_groups(self, g, cache):
        """The update's (crossbar rows, output-gradient rows) groups for output gradient g."""
        raise NotImplementedError

    def backward(self, g, cache):
        """Transposed read: the input gradient (batch x input shape) of output gradient g."""
        raise NotImplementedError

    def update(self, g, cache, lr):
        """Pulse the crossbar with the layer's update for output gradient g (rows x out, or a
        convolution's map): W <- W - lr sum g_rows^T rows."""
        self.crossbar.update_groups(self.row_groups(g, cache), lr)


class Dense(WeightLayer):
    """y = W x for any input shape (flattened C-major per sample)."""

    def input_cache(self, x) -> LayerCache:
        """The layer's cache for input x without a read: the crossbar rows and the input shape."""
        return LayerCache(x.reshape(x.shape[0], -1), x.shape)

    def forward(self, x):
        rows = x.reshape(x.shape[0], -1)
        y, clipped = self.crossbar.forward_clipped(rows)
        return y, LayerCache(rows, x.shape, clipped)

    def output_shape(self, in_shape):
        """Per-sample shape of the crossbar output for per-sample input shape `in_shape`."""
        return (self.crossbar.out_size,)

    def row_groups(self, g, cache):
        """The (rows, g rows) row groups of the update for output gradient g: one group here."""
        yield cache.rows, g

    def update(self, g, cache, lr):
        """The crossbar's update with the layer's rows, W <- W - lr sum g_rows^T rows (its one row group)."""
        self.crossbar.update(cache.rows, g, lr)

    def backward(self, g, cache):
        return self.crossbar.backward(g, cache.clipped).reshape(cache.in_shape)


class Conv2d(WeightLayer):
    """Convolution as im2col patches through a (out_channels, C*k*k) crossbar, made for blocks of
    samples of at most PATCH_BLOCK_BYTES at a time (at least one sample)."""

    def __init__(self, crossbar: Crossbar, geometry: ConvGeometry):
        super().__init__(crossbar)
        self.geometry = geometry

    def input_cache(self, x) -> LayerCache:
        return LayerCache(None, x.shape, x=x)

    def output_shape(self, in_shape):
        return (self.crossbar.out_size, *self.geometry.out_hw(*in_shape[1:]))

    def _sample_slices(self, in_shape) -> list[slice]:
        B, C, H, W = in_shape
        kh, kw = self.geometry.kernel_hw
        patch_bytes = C * kh * kw * math.prod(self.geometry.out_hw(H, W)) * np.dtype(backend.DTYPE).itemsize
        n = max(1, PATCH_BLOCK_BYTES[backend.xp().__name__] // max(patch_bytes, 1))
        return [slice(i, min(i + n, B)) for i in range(0, B, n)]

    def _kernels(self) -> bool:
        """Whether the crossbar computes this convolution itself (conv_kernels: the exact backend),
        rather than row by row; an observer (update fidelity) needs the rows."""
        return self.crossbar.conv_kernels and self.crossbar.observer is None

    def forward(self, x):
        cache = LayerCache(None, x.shape, x=x)
        if self._kernels():
            return self.crossbar.conv_read(x, self.geometry), cache
        B, _, H, W = x.shape
        y = backend.xp().empty((B, *self.geometry.out_hw(H, W), self.crossbar.out_size), dtype=backend.DTYPE)
        clipped = []
        for s in self._sample_slices(x.shape):
            y_rows, clip = self.crossbar.forward_clipped(im2col(x[s], self.geometry))
            y[s] = y_rows.reshape(y[s].shape)
            clipped.append(clip)
        clipped = None if all(c is None for c in clipped) else clipped
        return y.transpose(0, 3, 1, 2), cache._replace(clipped=clipped)

    @staticmethod
    def _g_rows(g):
        return g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])

    def row_groups(self, g, cache):
        for s in self._sample_slices(cache.in_shape):
            yield im2col(cache.x[s], self.geometry), self._g_rows(g[s])

    @staticmethod
    def _as_map(g):
        """An output gradient as a (B, out, Ho, Wo) map."""
        return g

    def update(self, g, cache, lr):
        if self._kernels():
            return self.crossbar.conv_update(cache.x, self._as_map(g), self.geometry, lr)
        return super().update(g, cache, lr)

    def backward(self, g, cache):
        if self._kernels():
            return self.crossbar.conv_transposed_read(g, self.geometry, cache.in_shape)
        z = backend.xp().empty(cache.in_shape, dtype=backend.DTYPE)
        for k, s in enumerate(self._sample_slices(cache.in_shape)):
            clip = None if cache.clipped is None else cache.clipped[k]
            rows = self.crossbar.backward(self._g_rows(g[s]), clip)
            z[s] = col2im(rows, self.geometry, z[s].shape)
        return z


class Conv1d(Conv2d):
    """1-D convolution of (B, C, L) signals, (B, C, L) -> (B, out, Lo): a (B, C, 1, L) image with a
    1 x k kernel. kernel = stride = s is the RHM's CNN (Cagnetta et al. 2024): each window of s positions of
    all input channels is one crossbar row."""

    def __init__(self, crossbar: Crossbar, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__(crossbar, ConvGeometry(kernel, stride, padding, dims=1))

    def input_cache(self, x) -> LayerCache:
        return super().input_cache(x[:, :, None, :])

    def output_shape(self, in_shape):
        return (self.crossbar.out_size, self.geometry.out_hw(1, in_shape[1])[1])

    def forward(self, x):
        y, cache = super().forward(x[:, :, None, :])
        return y[:, :, 0, :], cache

    @staticmethod
    def _as_map(g):
        return g[:, :, None, :]

    def row_groups(self, g, cache):
        return super().row_groups(g[:, :, None, :], cache)

    def backward(self, g, cache):
        return super().backward(g[:, :, None, :], cache)[:, :, 0, :]


class Block:
    """A weight layer, an optional max-pool and an activation: a = pool(W x), s = act(a)."""

    def __init__(self, layer: WeightLayer, act: Activation, pool: MaxPool2d | AvgPool2d | None = None):
        self.layer, self.act, self.pool = layer, act, pool

    @property
    def crossbar(self) -> Crossbar:
        """The block's crossbar (its weight layer's)."""
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

    def paired_cache(self, read, x):
        """The cache for a transposed read that pairs with the forward read whose cache is `read`
        (its saturation map, so d is masked where that read clipped) but routes through the
        max-pool switches of forward(x) (dual propagation reads at s̄, switches at s+)."""
        if not isinstance(self.pool, MaxPool2d):
            return read
        return read[0], self.forward(x)[1][1]

    def output_shape(self, in_shape):
        """Per-sample shape of a = pool(W x) for per-sample input shape `in_shape`."""
        shape = self.layer.output_shape(in_shape)
        if self.pool is None:
            return shape
        C, H, W = shape
        return (C, H // self.pool.k, W // self.pool.k)

    def _g_z(self, g_a, cache):
        """dL/d(Wx) from dL/da: through the pool's switches, unless the cache has no pool part (a
        signal given at the weight layer's output already, as SCFF's)."""
        return g_a if self.pool is None or cache[1] is None else self.pool.backward(g_a, cache[1])

    def backward(self, g_a, cache):
        """Transpose of the operator: dL/dx from dL/da (routed through the cached switches)."""
        return self.layer.backward(self._g_z(g_a, cache), cache[0])

    def update(self, g_a, cache, lr):
        """W <- W - lr * sum_b g_z x^T, with g_z = dL/d(Wx) routed through the cached switches."""
        self.layer.update(self._g_z(g_a, cache), cache[0], lr)

    def outer(self, g_a, cache):
        """The matrix `update` descends along (digital; for metrics such as alignment)."""
        return self.layer.outer(self._g_z(g_a, cache), cache[0])
