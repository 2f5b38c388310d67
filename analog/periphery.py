"""Digital periphery in `xp`: activations with derivatives, pooling with switches, im2col.

Everything here is plain array code that works on NumPy and CuPy alike (strided slices only, no
scatter), NCHW layout, C-major flatten.
"""

from __future__ import annotations

from dataclasses import dataclass

from hilt.analog import backend


# ---------------------------------------------------------------- activations
class Activation:
    """The identity activation: act(a) = a; the others override __call__ and deriv (elementwise, any
    shape)."""

    name = "identity"

    def __call__(self, a):
        return a

    def deriv(self, a):
        """d act / d a at a, elementwise (the same shape as a)."""
        return backend.xp().ones_like(a)


class ReLU(Activation):
    """max(0, a)."""

    name = "relu"

    def __call__(self, a):
        return backend.xp().maximum(a, 0)

    def deriv(self, a):
        return (a > 0).astype(a.dtype)


class Tanh(Activation):
    """tanh(a)."""

    name = "tanh"

    def __call__(self, a):
        return backend.xp().tanh(a)

    def deriv(self, a):
        return 1 - backend.xp().tanh(a) ** 2


class Sigmoid(Activation):
    """1 / (1 + e^-a)."""

    name = "sigmoid"

    def __call__(self, a):
        xp = backend.xp()
        return 0.5 * (1 + xp.tanh(0.5 * a))  # overflow-free logistic

    def deriv(self, a):
        s = self(a)
        return s * (1 - s)


class HardTanh(Activation):
    """a clipped to [-1, 1]."""

    name = "hardtanh"

    def __call__(self, a):
        return backend.xp().clip(a, -1, 1)

    def deriv(self, a):
        return (abs(a) < 1).astype(a.dtype)


ACTIVATIONS = {cls.name: cls for cls in (Activation, ReLU, Tanh, Sigmoid, HardTanh)}


# ---------------------------------------------------------------- pooling
def windows(x, k):
    """(B, C, H, W) -> (B, C, H//k, W//k, k*k), cropping a remainder as torch does."""
    B, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    x = x[:, :, : Ho * k, : Wo * k].reshape(B, C, Ho, k, Wo, k)
    return x.transpose(0, 1, 2, 4, 3, 5).reshape(B, C, Ho, Wo, k * k)


def unwindows(g, k, shape):
    """The adjoint of windows: gradients of the k x k windows (n, C, H/k, W/k, k*k) back onto an
    input of `shape` (n, C, H, W)."""
    B, C, H, W = shape
    Ho, Wo = H // k, W // k
    g = g.reshape(B, C, Ho, Wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(B, C, Ho * k, Wo * k)
    if (Ho * k, Wo * k) == (H, W):
        return g
    out = backend.xp().zeros(shape, dtype=g.dtype)
    out[:, :, : Ho * k, : Wo * k] = g
    return out


class MaxPool2d:
    """Non-overlapping k x k max-pool; the cache is the switch of every window (where its first
    maximum was). Computed with torch's pooling kernels on zero-copy views of the NumPy / CuPy
    arrays (its indices are the switches; the transpose scatters through them with max_unpool2d)."""

    def __init__(self, k: int = 2):
        self.k = k

    def forward(self, x):
        """k x k max-pool of (n, C, H, W) -> (n, C, H/k, W/k), and the switches (where each max
        was)."""
        import torch

        with torch.no_grad():
            y, switches = torch.nn.functional.max_pool2d(backend.to_torch(x), self.k, return_indices=True)
        return backend.from_torch(y), (switches, x.shape)

    def backward(self, g, cache):
        """The gradient (n, C, H/k, W/k) routed back through the switches to (n, C, H, W)."""
        import torch

        switches, shape = cache
        with torch.no_grad():
            z = torch.nn.functional.max_unpool2d(backend.to_torch(g), switches, self.k, output_size=tuple(shape[-2:]))
        return backend.from_torch(z)


class AvgPool2d:
    """k x k average pool of (n, C, H, W) -> (n, C, H/k, W/k), and its adjoint."""

    def __init__(self, k: int = 2):
        self.k = k

    def forward(self, x):
        """The pooled map (n, C, H/k, W/k)."""
        return windows(x, self.k).mean(axis=-1), x.shape

    def backward(self, g, shape):
        """The gradient spread evenly back over each window: (n, C, H, W)."""
        xp = backend.xp()
        win = xp.broadcast_to(g[..., None] / (self.k * self.k), g.shape + (self.k * self.k,))
        return unwindows(xp.ascontiguousarray(win), self.k, shape)


# ---------------------------------------------------------------- im2col
@dataclass(frozen=True)
class ConvGeometry:
    """A square k x k kernel, or with dims=1 a 1 x k kernel that slides along W only (1-D signals
    as (B, C, 1, L) images)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dims: int = 2

    def _hw(self, value: int, along_h: int) -> tuple[int, int]:
        return (value, value) if self.dims == 2 else (along_h, value)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        """(kernel height, kernel width) in pixels."""
        return self._hw(self.kernel, 1)

    @property
    def stride_hw(self) -> tuple[int, int]:
        """(stride along H, stride along W) in pixels."""
        return self._hw(self.stride, 1)

    @property
    def padding_hw(self) -> tuple[int, int]:
        """(zero padding along H, along W) in pixels."""
        return self._hw(self.padding, 0)

    def out_hw(self, H: int, W: int) -> tuple[int, int]:
        """The output map's (height, width) for an input of h x w pixels."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_hw, self.stride_hw, self.padding_hw
        return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def im2col(x, g: ConvGeometry):
    """(B, C, H, W) -> patches (B*Ho*Wo, C*kh*kw), columns ordered (c, i, j) like torch's weight."""
    xp = backend.xp()
    B, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = g.kernel_hw, g.stride_hw, g.padding_hw
    Ho, Wo = g.out_hw(H, W)
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((B, Ho, Wo, C, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = x[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw].transpose(0, 2, 3, 1)
    return cols.reshape(B * Ho * Wo, C * kh * kw)


def col2im(cols, g: ConvGeometry, shape):
    """Adjoint of im2col: sums patch gradients (B*Ho*Wo, C*kh*kw) back into (B, C, H, W)."""
    xp = backend.xp()
    B, C, H, W = shape
    (kh, kw), (sh, sw), (ph, pw) = g.kernel_hw, g.stride_hw, g.padding_hw
    Ho, Wo = g.out_hw(H, W)
    cols = cols.reshape(B, Ho, Wo, C, kh, kw)
    out = xp.zeros((B, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return out[:, :, ph : ph + H, pw : pw + W]
