"""The crossbar contract and its exact backend.

A crossbar holds one matrix W of shape (out, in) (plus one bias column driven by a constant 1
when `bias=True`) and offers exactly five operations:

    forward(x)        y = W x          x (B, in)  -> (B, out)     forward read
    backward(d)       z = W^T d        d (B, out) -> (B, in)      transposed read
    update(x, d, lr)  W <- W - lr * sum_b d_b x_b^T   (lr > 0)    pulsed outer-product update
    weights()         the (out, in[+1]) matrix, bias as the last column
    program(W)        write such a matrix

`update_groups(groups, lr)` is the same update with the batch's rows given as consecutive (x, d)
row groups, made one at a time: the exact backend sums d^T x group by group, so a convolution's
patches never exist all at once; the analog backend joins them (its tiles pulse row by row),
except under `--update summed`, where it sums G block by block too.

Convolutions are the same three primitives on a convolution's patch rows (im2col, see
analog/layers.py). A backend whose `conv_kernels` is True computes them without making the rows:
`conv_read(x, geometry)`, `conv_transposed_read(g, geometry, in_shape)` and
`conv_update(x, g, geometry, lr)` give the numbers and counts of forward, backward and update on
the patch rows. The exact backend does, with torch's convolution kernels (oneDNN on the CPU,
cuDNN on a GPU) on zero-copy views of its NumPy/CuPy arrays; the analog backend reads its tiles
row by row.

An `observer` (callable(crossbar, x, d, lr), None by default) sees every update before it is
made: metrics such as update fidelity use it to know what the rule asked for.

`counts` (analog/costs.py) adds up what the primitives were asked: reads, conversions, update
rows, pulses, digital MACs; `take_counts()` returns and resets them.

And, for checkpoints, `state_dict()` / `load_state_dict(state)`: everything the crossbar needs to
continue exactly where it was (exact: W, b and the optimizer's state; analog: the tiles' own
state, hidden device parameters included), as picklable host objects.

The bias is one more input column driven by a constant 1: read and updated with the matrix.

Saturated reads: an analog forward read whose output reaches the ADC bound carries no gradient.
`forward_clipped(x)` returns y and where that happened (None: nowhere, always on the exact
backend); `backward(d, clipped)` zeroes d there before the transposed read, which is how
aihwkit's own training (AnalogFunction) backpropagates through a tile. The update is not masked.
"""

from __future__ import annotations

from hilt.analog import backend
from hilt.analog.costs import zero_counts
from hilt.analog.optim import Optimizer, SGD, gradients


class RowTally:
    """Counts the rows of (x, d) groups as an update consumes them (`update_groups` is given a generator)."""

    def __init__(self):
        self.rows = 0

    def over(self, groups, convert):
        """Yield each (x, d) of `groups` converted, counting its rows."""
        for x, d in groups:
            self.rows += len(x)
            yield convert(x), convert(d)


def check_lr(lr) -> None:
    """ValueError unless the learning rate is > 0 (a crossbar update always descends)."""
    if not lr > 0:
        raise ValueError(f"crossbar update needs lr > 0 (got {lr}); pass -d for an ascending update")


class Crossbar:
    """A matrix W (out_size x in_size, plus a bias column when `bias`) and the three primitives a
    rule may use on it. Arrays are float32, batch-first: x is (rows x in_size), d is
    (rows x out_size); the bias input is the crossbar's own, callers never append it."""

    conv_kernels = False  # computes convolution reads and updates without patch rows (see above)

    def __init__(self, out_size: int, in_size: int, bias: bool = False):
        self.out_size, self.in_size, self.bias = int(out_size), int(in_size), bool(bias)
        self.observer = None
        self.counts = zero_counts()

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the stored matrix, bias column included."""
        return self.out_size, self.in_size + self.bias

    def forward(self, x):
        """Forward read y = W x (+ b) for every row: x (rows x in_size) -> y (rows x out_size)."""
        return self.forward_clipped(x)[0]

    def forward_clipped(self, x):
        """(y, clipped): the forward read and where its outputs were at the ADC bound, for `backward`."""
        x = backend.asarray(x)
        self._count_read(x.shape[0], transposed=False)
        return self._forward(x)

    def backward(self, d, clipped=None):
        """Transposed read z = W^T d (bias column excluded): d (rows x out_size) -> z (rows x
        in_size); `clipped` (from the paired `forward_clipped`) masks the rows' outputs that
        saturated there."""
        d = backend.asarray(d)
        self._count_read(d.shape[0], transposed=True)
        return self._backward(d, clipped)

    def update(self, x, d, lr: float) -> None:
        """Pulsed outer-product update W <- W - lr sum_rows d x^T (and b <- b - lr sum_rows d):
        x (rows x in_size), d (rows x out_size), lr > 0 in weight units per unit of d x^T."""
        check_lr(lr)
        x, d = backend.asarray(x), backend.asarray(d)
        if self.observer is not None:
            self.observer(self, x, d, float(lr))
        self._count_update(x.shape[0])
        self._update(x, d, float(lr))

    def update_groups(self, groups, lr: float) -> None:
        """The same update with the rows given as groups of (x, d) (a convolution's samples or
        positions); the default joins them and updates once."""

        def joined(parts):
            return parts[0] if len(parts) == 1 else backend.xp().concatenate(parts)

        x, d = map(joined, zip(*groups))
        self.update(x, d, lr)

    def take_counts(self) -> dict[str, float]:
        """What the primitives were asked since the last call (analog/costs.py COUNT_KEYS: reads,
        conversions, update rows, pulses, MACs), and restart from zero."""
        counts, self.counts = self.counts, zero_counts()
        self._complete_counts(counts)
        return counts

    def _complete_counts(self, counts: dict[str, float]) -> None:
        """Fill in what follows from the rows read and updated (the backend's per-row costs)."""

    def _count_read(self, rows: int, transposed: bool) -> None:
        self.counts["transposed_reads" if transposed else "forward_reads"] += rows

    def _count_update(self, rows: int) -> None:
        self.counts["update_calls"] += 1
        self.counts["update_rows"] += rows

    def weights(self):
        """The matrix as read out (verify read): out_size x (in_size + bias)."""
        return self._weights()

    def kept_weights(self):
        """The weights without read-time write noise (analog devices keep persistent weights); the
        same as `weights()` where a read shows exactly what is stored."""
        return self._weights()

    def program(self, W) -> None:
        """Write the matrix W (out_size x (in_size + bias)), as an initialisation or a transfer."""
        W = backend.asarray(W)
        if W.shape != self.shape:
            raise ValueError(f"program: expected a matrix of shape {self.shape}, got {W.shape}")
        self._program(W)

    def state_dict(self) -> dict:
        """Everything needed to continue training (arrays and plain data, for checkpoints)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        raise NotImplementedError

    # Backend hooks. x, d come without the bias input; the backend drives its bias column itself.
    def _forward(self, x):
        """(y, clipped); clipped is backend-specific and None when no output was at a bound."""
        raise NotImplementedError

    def _backward(self, d, clipped):
        """z for d, masked by `clipped`."""
        raise NotImplementedError

    def _update(self, x, d, lr: float) -> None:
        raise NotImplementedError

    def _weights(self):
        raise NotImplementedError

    def _program(self, W) -> None:
        raise NotImplementedError


class ExactCrossbar(Crossbar):
    """Float32 `xp` arithmetic; the update goes through a digital optimizer (plain SGD by default).

    The bias column is kept as its own vector b (y = W x + b), which is the same arithmetic as an
    input column driven by 1 without building that column on every read.
    """

    def __init__(self, out_size, in_size, bias=False, optimizer: Optimizer | None = None):
        super().__init__(out_size, in_size, bias)
        xp = backend.xp()
        # Column-major, the layout of the gradient d^T x = (x^T d)^T: W -= lr * g runs 10x faster on
        # matching layouts (measured on a 512 x 4608 conv matrix).
        self.W = xp.zeros((self.out_size, self.in_size), dtype=backend.DTYPE, order="F")
        self.b = xp.zeros(self.out_size, dtype=backend.DTYPE) if bias else None
        self.optimizer = optimizer or SGD()

    def _forward(self, x):
        y = backend.matmul(x, self.W.T)
        if self.b is not None:
            y += self.b
        return y, None

    def _backward(self, d, clipped):
        return backend.matmul(d, self.W)

    def _update(self, x, d, lr):
        self._descend([(x, d)], lr)

    def update_groups(self, groups, lr):
        if self.observer is not None:
            return super().update_groups(groups, lr)
        check_lr(lr)
        tally = RowTally()
        self._descend(tally.over(groups, backend.asarray), float(lr))
        self._count_update(tally.rows)

    def _descend(self, groups, lr: float) -> None:
        """The optimizer's step on the gradients summed over the (x, d) groups. Plain SGD multiplies
        each d (rows x out) by lr instead of the gradient (out x in) and the bias's."""
        step_lr = lr
        if self.optimizer.linear:
            groups, step_lr = ((x, d * lr) for x, d in groups), 1.0
        self.optimizer.step(self.W, self.b, *gradients(groups, self.bias), step_lr)

    # Convolutions with torch's kernels on zero-copy views: the numbers of the patch-row primitives
    # within float32 rounding, the same counts (one read or update row per output position).
    conv_kernels = True

    def _kernel(self, geometry, C: int):
        """W as torch's (out, C, kh, kw) weight (a view), b, and the conv's stride and padding. A
        crossbar read as a convolution keeps W row-major: the layout of torch's weight and of the
        weight gradient its kernel returns."""
        kh, kw = geometry.kernel_hw
        if not self.W.flags.c_contiguous:
            self.W = backend.xp().ascontiguousarray(self.W)
        weight = backend.to_torch(self.W).view(self.out_size, C, kh, kw)
        bias = None if self.b is None else backend.to_torch(self.b)
        return weight, bias, geometry.stride_hw, geometry.padding_hw

    def conv_read(self, x, geometry):
        """y (B, out, Ho, Wo): the forward read of x's patch rows, as a map."""
        import torch

        weight, bias, stride, padding = self._kernel(geometry, x.shape[1])
        with torch.no_grad():
            y = torch.nn.functional.conv2d(backend.to_torch(x), weight, bias, stride, padding)
        self._count_read(y.shape[0] * y.shape[2] * y.shape[3], transposed=False)
        return backend.from_torch(y)

    def conv_transposed_read(self, g, geometry, in_shape):
        """z (B, C, H, W): the transposed read of g (B, out, Ho, Wo) folded back onto the input."""
        import torch

        weight, _, stride, padding = self._kernel(geometry, in_shape[1])
        with torch.no_grad():
            z = torch.nn.grad.conv2d_input(tuple(in_shape), weight, backend.to_torch(g), stride, padding)
        self._count_read(g.shape[0] * g.shape[2] * g.shape[3], transposed=True)
        return backend.from_torch(z)

    def conv_update(self, x, g, geometry, lr):
        """The update of x's patch rows with g (B, out, Ho, Wo): W <- W - lr sum g_rows^T rows."""
        import torch

        check_lr(lr)
        weight, _, stride, padding = self._kernel(geometry, x.shape[1])
        gt = backend.to_torch(g)
        with torch.no_grad():
            gW = torch.nn.grad.conv2d_weight(backend.to_torch(x), weight.shape, gt, stride, padding)
            gb = gt.sum(dim=(0, 2, 3)) if self.bias else None
        gW = backend.from_torch(gW.reshape(self.out_size, self.in_size))
        self.optimizer.step(self.W, self.b, gW, None if gb is None else backend.from_torch(gb), float(lr))
        self._count_update(g.shape[0] * g.shape[2] * g.shape[3])

    def _complete_counts(self, counts):
        rows = counts["forward_reads"] + counts["transposed_reads"] + counts["update_rows"]
        counts["digital_macs"] += rows * self.out_size * (self.in_size + self.bias)  # reads and gradients are matmuls here

    def _weights(self):
        if self.b is None:
            return self.W.copy()
        return backend.xp().concatenate([self.W, self.b[:, None]], axis=1)

    def _program(self, W):
        self.W[...] = W[:, : self.in_size]
        if self.b is not None:
            self.b[...] = W[:, self.in_size]

    def state_dict(self):
        return {"weights": backend.to_numpy(self.weights()), "optimizer": self.optimizer.state_dict()}  # weights() copies

    def load_state_dict(self, state):
        self.program(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])


def exact_copy(crossbar: Crossbar, bias: bool = True) -> ExactCrossbar:
    """An ExactCrossbar holding `crossbar`'s current (read-out) weights; bias=False drops b."""
    xbar = ExactCrossbar(crossbar.out_size, crossbar.in_size, crossbar.bias and bias)
    W = backend.asarray(crossbar.weights())
    xbar.program(W if xbar.bias else W[:, : crossbar.in_size])
    return xbar
