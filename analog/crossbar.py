"""The crossbar contract and its exact backend.

A crossbar holds one matrix W of shape (out, in) (plus one bias column driven by a constant 1
when `bias=True`) and offers exactly five operations:

    forward(x)        y = W x          x (B, in)  -> (B, out)     forward read
    backward(d)       z = W^T d        d (B, out) -> (B, in)      transposed read
    update(x, d, lr)  W <- W - lr * sum_b d_b x_b^T   (lr > 0)    pulsed outer-product update
    weights()         the (out, in[+1]) matrix, bias as the last column
    program(W)        write such a matrix

Subclasses implement the same operations on the bias-augmented matrix (`_forward`,
`_backward`, `_update`, `_weights`, `_program`); the bias column is added here once.
"""

from __future__ import annotations

from analog import backend
from analog.optim import Optimizer, SGD


class Crossbar:
    def __init__(self, out_size: int, in_size: int, bias: bool = False):
        self.out_size, self.in_size, self.bias = int(out_size), int(in_size), bool(bias)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the stored matrix, bias column included."""
        return self.out_size, self.in_size + self.bias

    def _with_ones(self, x):
        if not self.bias:
            return backend.asarray(x)
        xp = backend.xp()
        out = xp.ones((x.shape[0], self.in_size + 1), dtype=backend.DTYPE)
        out[:, : self.in_size] = x
        return out

    def forward(self, x):
        return self._forward(self._with_ones(x))

    def backward(self, d):
        z = self._backward(backend.asarray(d))
        return z[:, : self.in_size] if self.bias else z

    def update(self, x, d, lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"crossbar update needs lr > 0 (got {lr}); pass -d for an ascending update")
        self._update(self._with_ones(x), backend.asarray(d), float(lr))

    def weights(self):
        return self._weights()

    def program(self, W) -> None:
        W = backend.asarray(W)
        if W.shape != self.shape:
            raise ValueError(f"program: expected a matrix of shape {self.shape}, got {W.shape}")
        self._program(W)

    # Subclass hooks, all on the bias-augmented matrix.
    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, d):
        raise NotImplementedError

    def _update(self, x, d, lr: float) -> None:
        raise NotImplementedError

    def _weights(self):
        raise NotImplementedError

    def _program(self, W) -> None:
        raise NotImplementedError

    def post_epoch(self) -> None:
        """Hook for devices that need work once per epoch (none so far)."""


class ExactCrossbar(Crossbar):
    """Float32 `xp` arithmetic; the update goes through a digital optimizer (plain SGD by default)."""

    def __init__(self, out_size, in_size, bias=False, optimizer: Optimizer | None = None):
        super().__init__(out_size, in_size, bias)
        self.W = backend.xp().zeros(self.shape, dtype=backend.DTYPE)
        self.optimizer = optimizer or SGD()

    def _forward(self, x):
        return x @ self.W.T

    def _backward(self, d):
        return d @ self.W

    def _update(self, x, d, lr):
        self.optimizer.step(self.W, d, x, lr)

    def _weights(self):
        return self.W.copy()

    def _program(self, W):
        self.W[...] = W
