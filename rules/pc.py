"""Incremental predictive coding (iPC; Salvatori et al. 2024, the pcx library's default) on
crossbar primitives (the PC baseline of Wu et al. 2026, App. C).

Value nodes x_k live in pre-activation space; x_0 = the input (clamped). With s_k = rho(x_k):

    mu_k  = W_k s_{k-1}                         forward read (prediction)
    e_k   = x_k - mu_k                          prediction error
    F     = sum_k 1/2 ||e_k||^2 + l(x_L, y)     energy (l summed over the batch)

x_k starts at the feed-forward value (all e_k = 0). Each of T inference steps moves the values
down the energy, then, incrementally, the weights along the new errors:

    x_k <- x_k - eta_h (e_k - rho'(x_k) * W_{k+1}^T e_{k+1})   (transposed read), k < L
    x_L <- x_L - eta_h (e_L + dl/dx_L)
    W_k <- W_k - lr sum_b (-e_k / B) s_{k-1}^T                 (pulsed update)

`signals` (for alignment) runs the T steps without touching the weights and returns the final
-e_k / B. clapp_pc ("naive CLAPP PC") replaces l by the top layer's CLAPP++ loss.
"""

from __future__ import annotations

from typing import Annotated

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.rules.base import LossOption, Rule, Signals, check_finite, output_metrics
from hilt.rules.bp import forward_trace
from hilt.rules.contrastive import BPClappPP, ContrastOption, PoolOption
from hilt.rules.probe import ProbeReadout

MAX_STEPS = 1000
InferenceSteps = Annotated[int, f"value-node inference steps T per batch, 1-{MAX_STEPS}"]
EtaH = Annotated[float, "value-node step size in (0, 1]"]


class PredictiveCoding(Rule):
    """Incremental predictive coding (iPC): value nodes relax, weights follow local errors."""

    name = "pc"

    def __init__(self, inference_steps: InferenceSteps = 8, eta_h: EtaH = 0.1, loss: LossOption = "ce"):
        super().__init__(loss)
        if not 1 <= inference_steps <= MAX_STEPS:
            raise HiltError(f"--inference-steps must be in [1, {MAX_STEPS}] (got {inference_steps})")
        if not 0 < eta_h <= 1:
            raise HiltError(f"--eta-h must be in (0, 1] (got {eta_h})")
        self.inference_steps, self.eta_h = int(inference_steps), float(eta_h)

    def params(self) -> dict:
        return {"inference_steps": self.inference_steps, "eta_h": self.eta_h, "loss": self.loss_name}

    def top(self, net, a, y):
        """(metrics, dl/da_L summed over the batch, auxiliary updates) of the output term l(x_L, y)."""
        loss, g = self.loss(a, y)
        return output_metrics(a, y, loss), g, {}

    def targets(self, x, y):
        """(input rows, what `top` compares the output with)."""
        return backend.asarray(x), y

    def infer(self, net, x, y, lr: float | None):
        """T inference steps; with lr, the weights are updated at every step (iPC)."""
        blocks, L, B = net.blocks, len(net.blocks), len(x)
        trace = forward_trace(net, x)
        values = [x] + [a for a, _, _ in trace]
        metrics, g, _ = self.top(net, values[L], y)
        errors, caches = self.errors(net, values)
        for _ in range(self.inference_steps):
            for k in range(1, L + 1):
                if k < L:
                    grad = errors[k] - blocks[k - 1].act.deriv(values[k]) * blocks[k].backward(errors[k + 1], caches[k + 1])
                else:
                    grad = errors[L] + g
                values[k] = check_finite(values[k] - self.eta_h * grad, "value nodes", k)
            errors, caches = self.errors(net, values)
            _, g, aux = self.top(net, values[L], y)  # read before this step's updates, like the errors
            if lr is not None:
                for k, block in enumerate(blocks, 1):
                    block.update(-errors[k] / B, caches[k], lr)
                for name, (inp, d) in aux.items():
                    net.aux[name].update(inp, d, lr)
        return Signals(metrics, [(-errors[k] / B, caches[k]) for k in range(1, L + 1)], aux)

    @staticmethod
    def errors(net, values):
        """e_k = x_k - W_k rho(x_{k-1}) and the read caches, index 1..L (index 0 unused)."""
        errors, caches = [None], [None]
        for k, block in enumerate(net.blocks, 1):
            s_prev = values[0] if k == 1 else net.blocks[k - 2].act(values[k - 1])
            mu, cache = block.forward(s_prev)
            errors.append(values[k] - mu)
            caches.append(cache)
        return errors, caches

    def signals(self, net, x, y):
        """The T steps with the weights held (for alignment): the final -e_k / B."""
        return self.infer(net, *self.targets(x, y), lr=None)

    def step(self, net, x, y, lr: float) -> dict:
        """iPC moves the weights at every inference step, so it applies its own updates."""
        return self.infer(net, *self.targets(x, y), lr).metrics


class ClappPC(ProbeReadout, PredictiveCoding):
    """Self-supervised: naive CLAPP PC, iPC with the top-layer CLAPP++ loss as its output term.

    Naive CLAPP PC (Wu et al. 2026, App. C): the output term is bp_clapp_pp's loss on the top value nodes,
    l = n L^L(pool(rho(x_L))) (summed over the n context rows like the energy); its B^L is
    updated with the weights at every inference step."""

    name = "clapp_pc"

    def __init__(self, inference_steps: InferenceSteps = 8, eta_h: EtaH = 0.1, contrast: ContrastOption = "hinge",
                 pool: PoolOption = None):
        super().__init__(inference_steps, eta_h, loss=None)
        self.objective = BPClappPP(contrast, pool)

    def params(self) -> dict:
        return {"inference_steps": self.inference_steps, "eta_h": self.eta_h, **self.objective.params()}

    def attach(self, net, make_crossbar, rng):
        self.objective.attach(net, make_crossbar, rng)

    def pools(self, net):
        """The FeaturePool of every layer (the probe and the top loss read them)."""
        return self.objective.pools(net)

    def reference(self):
        return self.objective

    def targets(self, pairs, y):
        x, partner, negative = self.objective.rows(pairs)
        return x, (partner, negative)

    def top(self, net, a, target):
        partner, negative = target
        n, (name, _, _) = len(a), self.objective.matrices(len(net.blocks))[0]
        block, pool = net.blocks[-1], self.pools(net)[-1]
        r = self.objective.top_loss(net.aux[name], pool(block.act(a)), partner, negative)
        g = n * block.act.deriv(a) * pool.backward(r.grad_p)
        return self.objective.metrics(r.loss, r.pair_accuracy, n // 2), g, {name: (r.b_input, r.b_delta)}
