"""Digital optimizers held by an exact crossbar.

`step(W, b, gW, gb, lr)` applies the optimizer to the batch-summed gradients gW = d^T x and
gb = sum_b d (b and gb may be None), in place, following torch.optim's conventions (coupled weight
decay for SGD/Adam, decoupled for AdamW; decay applies to the bias column too). The gradients are
the optimizer's to overwrite.
"""

from __future__ import annotations

from hilt.analog import backend


def outer(d, x):
    """d^T x, computed as (x^T d)^T: OpenBLAS runs the tall-skinny products of convolutions
    (rows = batch x positions) up to 5x faster in this order, and never slower (measured)."""
    return backend.matmul(x.T, d).T


def gradients(blocks, bias: bool):
    """(gW, gb): sum over the (x, d) blocks of one batch of d^T x and of d (gb None without a
    bias). Blocks are consumed one at a time, so a convolution's patches never exist all at once."""
    gW = gb = None
    for i, (x, d) in enumerate(blocks):
        gW = outer(d, x) if i == 0 else gW + outer(d, x)
        if bias:
            gb = d.sum(axis=0) if i == 0 else gb + d.sum(axis=0)
    return gW, gb


def gradient_matrix(blocks, bias: bool):
    """The summed gradients as one (out, in[+1]) matrix, sum d as the last column when there is a
    bias: the layout of `Crossbar.weights()`."""
    gW, gb = gradients(blocks, bias)
    return gW if gb is None else backend.xp().concatenate([gW, gb[:, None]], axis=1)


def _params_and_grads(W, b, gW, gb):
    return [(W, gW)] + ([(b, gb)] if b is not None else [])


def _map_arrays(obj, fn):
    """fn applied to every array in nested lists/tuples (None and numbers pass through)."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_arrays(o, fn) for o in obj)
    return obj if obj is None or isinstance(obj, (int, float)) else fn(obj)


class Optimizer:
    """The digital optimizer of an exact crossbar: turns the batch gradient G (out x in [+1]) into
    the step W <- W - lr * step."""

    name = "optimizer"
    state_keys: tuple[str, ...] = ()  # attributes that carry state from step to step (checkpoints)

    linear = False  # whether step(gW, lr) == step(lr * gW, 1) (plain SGD)

    def step(self, W, b, gW, gb, lr: float) -> None:
        """The change to subtract from W (after multiplying by lr) for gradient G, of W's shape."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The step-to-step state as host (NumPy) copies."""
        return {key: _map_arrays(getattr(self, key), lambda a: backend.to_numpy(a).copy()) for key in self.state_keys}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""
        def restore(a):  # in the column-major layout of ExactCrossbar.W and of the gradients
            return backend.xp().asfortranarray(backend.asarray(a))

        for key in self.state_keys:
            setattr(self, key, _map_arrays(state[key], restore))


class SGD(Optimizer):
    """SGD with optional momentum and coupled L2 weight decay (added to the gradient), as torch's."""

    name = "sgd"
    state_keys = ("bufs",)

    def __init__(self, momentum: float = 0.0, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.bufs: list | None = None

    def step(self, W, b, gW, gb, lr):
        pairs = _params_and_grads(W, b, gW, gb)
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
                p -= lr * self.bufs[i]
            else:
                if lr != 1.0:  # the gradient is ours: no temporary the size of W
                    g *= lr
                p -= g

    @property
    def linear(self) -> bool:
        """Plain SGD: the step is lr times the gradient, so lr may be applied to d before d^T x is
        formed (the crossbar does: d is batch x out, a fraction of W's size)."""
        return not (self.momentum or self.weight_decay)


class Adam(Optimizer):
    """Adam (AdamW when decoupled), torch's defaults (betas 0.9, 0.999, eps 1e-8)."""

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

    def step(self, W, b, gW, gb, lr):
        xp = backend.xp()
        pairs = _params_and_grads(W, b, gW, gb)
        if self.moments is None:
            self.moments = [(xp.zeros_like(p), xp.zeros_like(p)) for p, _ in pairs]
        self.t += 1
        for (p, g), (m, v) in zip(pairs, self.moments):
            if self.weight_decay and not self.decoupled:
                g += self.weight_decay * p
            m *= self.b1
            m += (1 - self.b1) * g
            # From here g is scratch (it is ours): one temporary the size of W, not five.
            g *= g
            v *= self.b2
            v += (1 - self.b2) * g
            if self.weight_decay and self.decoupled:
                p *= 1 - lr * self.weight_decay
            xp.divide(v, 1 - self.b2**self.t, out=g)  # lr * m_hat / (sqrt(v_hat) + eps)
            xp.sqrt(g, out=g)
            g += self.eps
            xp.divide(m, g, out=g)
            g *= lr / (1 - self.b1**self.t)
            p -= g


class AdamW(Adam):
    """Adam with decoupled weight decay, --weight-decay (default 0, as for every optimizer here)."""

    name = "adamw"
    decoupled = True


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(name: str, momentum: float = 0.0, weight_decay: float = 0.0) -> Optimizer:
    """A new optimizer by name (sgd, adam, adamw); ValueError for an unknown one."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        return SGD(momentum=momentum, weight_decay=weight_decay)
    if momentum:
        raise ValueError(f"--momentum applies to sgd only, not {name}")
    return OPTIMIZERS[name](weight_decay=weight_decay)
