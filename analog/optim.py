"""Digital optimizers held by an exact crossbar.

`step(W, d, x, lr)` applies the optimizer to the batch-summed gradient G = d^T x in place,
following torch.optim's conventions (coupled weight decay for SGD/Adam, decoupled for AdamW).
"""

from __future__ import annotations

import numpy as np

from analog import backend

try:  # BLAS gemm with beta=1 updates W in place: W <- W - lr d^T x in one pass.
    from scipy.linalg.blas import sgemm as _sgemm
except ImportError:  # pragma: no cover - scipy comes with scikit-learn
    _sgemm = None


def _outer(d, x):
    return d.T @ x


class Optimizer:
    name = "optimizer"

    def step(self, W, d, x, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, momentum: float = 0.0, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buf = None

    def step(self, W, d, x, lr):
        if self.momentum == 0.0 and self.weight_decay == 0.0:
            if _sgemm is not None and isinstance(W, np.ndarray) and W.flags.f_contiguous is False:
                # W is C-contiguous (out, in); its transpose is F-contiguous (in, out), which
                # BLAS can update in place: W^T <- W^T - lr x^T d.
                _sgemm(-lr, x, d, beta=1.0, c=W.T, trans_a=1, overwrite_c=1)
            else:
                W -= lr * _outer(d, x)
            return
        g = _outer(d, x)
        if self.weight_decay:
            g += self.weight_decay * W
        if self.momentum:
            if self.buf is None:
                self.buf = g
            else:
                self.buf *= self.momentum
                self.buf += g
            g = self.buf
        W -= lr * g


class Adam(Optimizer):
    name = "adam"
    decoupled = False

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.m = self.v = None
        self.t = 0

    def step(self, W, d, x, lr):
        xp = backend.xp()
        g = _outer(d, x)
        if self.weight_decay and not self.decoupled:
            g += self.weight_decay * W
        if self.m is None:
            self.m, self.v = xp.zeros_like(W), xp.zeros_like(W)
        self.t += 1
        self.m *= self.b1
        self.m += (1 - self.b1) * g
        self.v *= self.b2
        self.v += (1 - self.b2) * g * g
        if self.weight_decay and self.decoupled:
            W *= 1 - lr * self.weight_decay
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        W -= lr * m_hat / (xp.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    name = "adamw"
    decoupled = True

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, momentum: float = 0.0, weight_decay: float = 0.0) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        return SGD(momentum=momentum, weight_decay=weight_decay)
    if momentum:
        raise ValueError(f"--momentum applies to sgd only, not {name}")
    return OPTIMIZERS[name](weight_decay=weight_decay)
