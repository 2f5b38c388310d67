"""Dual propagation (Hoier et al. 2023, `dp`) and its adjoint DP-transpose (Hoier & Zach 2024,
`dp_adjoint`), on crossbar primitives (docs: rules/dual-propagation.md).

Every neuron is a dyad (s+, s-). With s_0 = x, for layers k = 1..L:

    s̄_k = alpha s+_k + (1 - alpha) s-_k            delta_k = s+_k - s-_k
    a_k = W_{k-1} s̄_{k-1}                           forward read
    e_k = W_k^T delta_{k+1}                         transposed read (through the max-pool
                                                    switches of conv(s+_k), as the authors' code), masked
                                                    where layer k+1's latest forward read
                                                    saturated, as bp's (crossbar contract)
    dp          hidden  s+ = rho(a + alpha e)        s- = rho(a - (1-alpha) e)
                output  s+ = a - alpha beta g        s- = a + (1-alpha) beta g,  g = grad l(a_L now)
    dp_adjoint  hidden  s+ = rho(a + (1-alpha) e)    s- = rho(a - alpha e)
                output  s+ = a - (1-alpha) beta g    s- = a + alpha beta g,      g = grad l(â_L)

â_L is the output of the initial feed-forward pass; the loss l is summed over the batch (each
sample nudged by beta * grad, as the authors' code). Damping (Høier & Zach 2024, App. F) replaces a hidden update by
rho((a ± c e + L_k s_old) / (1 + L_k)), L_k = |1 - 2 alpha| max(0, gamma_k^2 - 1) / 2 with
gamma_k = ||W_k||_2 from 20 power iterations on the read-out weights.

After inference every layer gets one update with d = -delta_k / (beta B) against s̄_{k-1}, the
gradient of

    J = -(1/(beta B)) sum_k sum_batch delta_k^T (W_{k-1} s̄_{k-1} + b_{k-1}).
"""

from __future__ import annotations

import re
from typing import Annotated

import numpy as np

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.rules.base import LossOption, Rule, Signals, check_finite, output_metrics

SCHEDULES = ("fwbw", "fw")
# Each pass reads every layer twice and DP settles in a few passes (K = 1 for fwbw in Høier et al. 2023);
# beyond this a step only gets slower, and a typo such as 10000 would look like a hang.
MAX_PASSES = 100


def schedule_order(schedule: str, passes: int, L: int) -> list[int]:
    """Layer indices 1..L in update order (L = the output layer): fwbwK and fwK of Høier & Zach 2024."""
    if schedule == "fwbw":
        return list(range(L, 1, -1)) + (list(range(1, L)) + list(range(L, 0, -1))) * (passes - 1) + [1]
    if schedule == "fw":
        return list(range(1, L + 1)) * passes
    raise HiltError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)} (with --passes K)")


def parse_schedule(text: str, passes: int | None) -> tuple[str, int]:
    """'fwbw', 'fw3' or 'fwbw2' (+ optional passes) -> (name, K)."""
    m = re.fullmatch(r"(fwbw|fw)(\d*)", text)
    if not m:
        raise HiltError(f"unknown schedule {text!r}; allowed: fwbwK, fwK (e.g. fwbw1, fw4)")
    k = int(m[2]) if m[2] else (1 if passes is None else passes)
    if passes is not None and m[2] and int(m[2]) != passes:
        raise HiltError(f"--schedule {text} and --passes {passes} disagree")
    if not 1 <= k <= MAX_PASSES:
        raise HiltError(f"--passes must be in [1, {MAX_PASSES}] (got {k}): each pass reads every layer twice, "
                        "and dual propagation settles in a few passes")
    return m[1], k


def spectral_norm(block, input_shape, iterations: int = 20, seed: int = 0) -> float:
    """||W||_2 of a block's weight operator (no bias, no pooling) from its read-out weights."""
    layer = block.layer.exact_copy(bias=False)
    xp = backend.xp()
    b = backend.asarray(np.random.default_rng(seed).normal(size=(1, *input_shape)))
    for _ in range(iterations):
        y, cache = layer.forward(b)
        b = layer.backward(y, cache)
        b = b / xp.maximum(xp.linalg.norm(b), 1e-30)
    y, _ = layer.forward(b)
    return float(xp.linalg.norm(y))


class DualPropagation(Rule):
    """Dual propagation (Hoier et al. 2023): dyadic states, stable for alpha = 1/2."""

    name = "dp"
    adjoint = False

    def __init__(self, alpha: Annotated[float, "asymmetric nudging in [0, 1]"] = 0.5,
                 beta: Annotated[float, "nudging strength > 0"] = 0.1,
                 schedule: Annotated[str, "inference schedule: fwbw | fw (or fwbwK, fwK)"] = "fwbw",
                 passes: Annotated[int | None, f"passes K of the schedule, 1-{MAX_PASSES} (default 1)"] = None,
                 damping: Annotated[bool, "stabilised (proximal) iteration"] = False,
                 loss: LossOption = "ce"):
        super().__init__(loss)
        if not 0.0 <= alpha <= 1.0:
            raise HiltError(f"--alpha must be in [0, 1] (got {alpha})")
        if not (beta > 0 and np.isfinite(beta)):
            raise HiltError(f"--beta must be a finite number > 0 (got {beta})")
        self.alpha, self.beta, self.damping = float(alpha), float(beta), bool(damping)
        self.schedule, self.passes = parse_schedule(schedule, passes)

    def params(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "schedule": self.schedule, "passes": self.passes,
                "damping": self.damping, "loss": self.loss_name}

    def coefficients(self) -> tuple[float, float]:
        """(c+, c-): hidden s+ = rho(a + c+ e), s- = rho(a - c- e); output s± = a ∓ c± beta g."""
        a = self.alpha
        return (1 - a, a) if self.adjoint else (a, 1 - a)

    def infer(self, net, x, y):
        """Run the inference schedule; returns (feed-forward output, loss, s̄ per layer, delta per layer)."""
        blocks, L = net.blocks, len(net.blocks)
        xp = backend.xp()
        # Feed-forward initialisation: s+ = s- = s̄ = rho(a), delta = 0.
        mean, plus, minus, delta, pre = [x], [x], [x], [None] * (L + 1), [None] * (L + 1)
        reads = [None] * (L + 1)  # the cache of each layer's latest forward read
        s = x
        for k, block in enumerate(blocks, 1):
            a, reads[k] = block.forward(s)
            pre[k] = check_finite(a, "pre-activations", k)
            s = block.act(a)
            mean.append(s), plus.append(s), minus.append(s)
        a_hat = pre[L]
        loss, g_hat = self.loss(a_hat, y)
        c_plus, c_minus = self.coefficients()
        lipschitz = self.damping_constants(net) if self.damping else [0.0] * (L + 1)

        for k in schedule_order(self.schedule, self.passes, L):
            block = blocks[k - 1]
            a, reads[k] = block.forward(mean[k - 1])
            if k == L:
                g = g_hat if self.adjoint else self.loss(a, y)[1]
                plus[k], minus[k] = a - c_plus * self.beta * g, a + c_minus * self.beta * g
            else:
                above = blocks[k]
                if delta[k + 1] is None:
                    e = xp.zeros_like(a)
                else:
                    e = above.backward(delta[k + 1], above.paired_cache(reads[k + 1], plus[k]))
                Lk = lipschitz[k]
                if Lk:
                    plus[k] = block.act((a + c_plus * e + Lk * plus[k]) / (1 + Lk))
                    minus[k] = block.act((a - c_minus * e + Lk * minus[k]) / (1 + Lk))
                else:
                    plus[k], minus[k] = block.act(a + c_plus * e), block.act(a - c_minus * e)
            # s̄ is non-finite exactly when s+ or s- is (0 * inf is nan): one check covers both.
            mean[k] = check_finite(self.alpha * plus[k] + (1 - self.alpha) * minus[k], "states s+/s-", k)
            delta[k] = plus[k] - minus[k]
        for k in range(1, L + 1):
            if delta[k] is None:  # a layer the schedule never reached carries no error
                delta[k] = xp.zeros_like(mean[k])
        return a_hat, loss, mean, delta

    def damping_constants(self, net) -> list[float]:
        """L_k for hidden layers k (index 1..L-1) from the outgoing weights W_k (Høier & Zach 2024, App. F)."""
        out = [0.0] * (len(net.blocks) + 1)
        scale = abs(1 - 2 * self.alpha)
        if scale == 0:
            return out
        shape = net.input_shape
        for k, block in enumerate(net.blocks, 1):
            if k > 1:
                gamma = spectral_norm(block, shape)
                out[k - 1] = scale * max(0.0, gamma**2 - 1) / 2
            shape = block.output_shape(shape)
        return out

    def signals(self, net, x, y):
        a_hat, loss, mean, delta = self.infer(net, x, y)
        scale = -1.0 / (self.beta * len(x))
        signals = [(scale * delta[k], block.cache_for(mean[k - 1])) for k, block in enumerate(net.blocks, 1)]
        return Signals(output_metrics(a_hat, y, loss), signals)


class DualPropagationAdjoint(DualPropagation):
    """Adjoint dual propagation DP-transpose (Hoier & Zach 2024): stable for any alpha."""

    name = "dp_adjoint"
    adjoint = True

