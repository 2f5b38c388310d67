"""Digital optimizers held by an exact crossbar.

`step(W, b, d, x, lr)` applies the optimizer to the batch-summed gradients G_W = d^T x and
G_b = sum_b d (b may be None), in place, following torch.optim's conventions (coupled weight
decay for SGD/Adam, decoupled for AdamW; decay applies to the bias column too).
"""

from __future__ import annotations

from analog import backend


def outer(d, x):
    """d^T x, computed as (x^T d)^T: OpenBLAS runs the tall-skinny products of convolutions
    (rows = batch x positions) up to 5x faster in this order, and never slower (measured)."""
    return (x.T @ d).T


def _params_and_grads(W, b, d, x):
    """[(W, d^T x)] plus (b, sum_b d) when there is a bias."""
    return [(W, outer(d, x))] + ([(b, d.sum(axis=0))] if b is not None else [])


def _map_arrays(obj, fn):
    """fn applied to every array in nested lists/tuples (None and numbers pass through)."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_arrays(o, fn) for o in obj)
    return obj if obj is None or isinstance(obj, (int, float)) else fn(obj)


class Optimizer:
    name = "optimizer"
    state_keys: tuple[str, ...] = ()  # attributes that carry state from step to step (checkpoints)

    def step(self, W, b, d, x, lr: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The step-to-step state as host (NumPy) copies."""
        return {key: _map_arrays(getattr(self, key), lambda a: backend.to_numpy(a).copy()) for key in self.state_keys}

    def load_state_dict(self, state: dict) -> None:
        for key in self.state_keys:
            setattr(self, key, _map_arrays(state[key], backend.asarray))


class SGD(Optimizer):
    name = "sgd"
    state_keys = ("bufs",)

    def __init__(self, momentum: float = 0.0, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.bufs: list | None = None

    def step(self, W, b, d, x, lr):
        if self.momentum == 0.0 and self.weight_decay == 0.0:
            W -= outer(lr * d, x)  # lr folded into the small factor: one matmul, one pass over W
            if b is not None:
                b -= lr * d.sum(axis=0)
            return
        pairs = _params_and_grads(W, b, d, x)
        if self.bufs is None and self.momentum:
            self.bufs = [None] * len(pairs)
        for i, (p, g) in enumerate(pairs):
            if self.weight_decay:
                g += self.weight_decay * p
            if self.momentum:
                if self.bufs[i] is None:
                    self.bufs[i] = g
                else:
                    self.bufs[i] *= self.momentum
                    self.bufs[i] += g
                g = self.bufs[i]
            p -= lr * g


class Adam(Optimizer):
    name = "adam"
    decoupled = False
    state_keys = ("moments", "t")

    def __init__(self, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.moments: list | None = None
        self.t = 0

    def step(self, W, b, d, x, lr):
        xp = backend.xp()
        pairs = _params_and_grads(W, b, d, x)
        if self.moments is None:
            self.moments = [(xp.zeros_like(p), xp.zeros_like(p)) for p, _ in pairs]
        self.t += 1
        for (p, g), (m, v) in zip(pairs, self.moments):
            if self.weight_decay and not self.decoupled:
                g += self.weight_decay * p
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            if self.weight_decay and self.decoupled:
                p *= 1 - lr * self.weight_decay
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            p -= lr * m_hat / (xp.sqrt(v_hat) + self.eps)


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
