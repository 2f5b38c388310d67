"""Update fidelity: what the rule asked each crossbar to change vs what the device changed.

`FidelityProbe` wraps a rule. Every `every`-th training step it reads every crossbar's weights
before and after the step and records, through the crossbars' update observer, the update the
rule asked for: requested = -lr * sum of the outer products it passed to `update` (bias column
included). Per layer it reports:

- cosine and norm ratio |actual| / |requested| of the two matrices;
- not_made: of the entries the rule asked to change, the fraction the device left exactly as
  they were (no pulse fired; a pulsed device redraws its write noise, so a pulse always shows);
- below_one_pulse: the fraction of asked changes smaller than one pulse (dw_min x weight scale);
- at_bounds: the fraction of weights within 1 % of the device range from a bound (single
  devices only; NaN for compound presets and on the exact path, as are the pulse fractions);
- cosine_kept and norm_ratio_kept: the same two on the weights the device keeps
  (`kept_weights`: persistent weights without the write noise a read of a ReRAM device redraws
  at every pulse; for compounds the effective weight of the devices' persistent weights). On
  ReRAM-ES the visible cosine is 0.01-0.03 because of that noise alone.
"""

from __future__ import annotations

import numpy as np

from hilt.analog import backend
from hilt.analog.optim import gradient_matrix
from hilt.experiments.measure.alignment import cosine


def _requested(crossbar, x, d, lr):
    """-lr * (d^T x | sum d): the update `crossbar.update(x, d, lr)` asks for, bias column included."""
    return -lr * backend.to_numpy(gradient_matrix([(x, d)], crossbar.bias))


def layer_fidelity(crossbar, before, after, requested, kept_before, kept_after) -> dict:
    """The fidelity metrics of one crossbar's step: the weights before and after (out x in [+1]),
    the requested change, the kept weights."""
    actual, kept = after - before, kept_after - kept_before
    asked = requested != 0
    pulse = crossbar.pulse_size() if hasattr(crossbar, "pulse_size") else float("nan")
    bounds = crossbar.bounds() if hasattr(crossbar, "bounds") else None
    at_bounds = float("nan")
    if bounds is not None:
        lo, hi = bounds
        margin = 0.01 * (hi - lo)
        at_bounds = float(((after <= lo + margin) | (after >= hi - margin)).mean())
    pulsed = np.isfinite(pulse)
    return {
        "cosine": cosine(actual, requested),
        "norm_ratio": float(np.linalg.norm(actual) / np.linalg.norm(requested)) if asked.any() else float("nan"),
        "not_made": float((actual[asked] == 0).mean()) if pulsed and asked.any() else float("nan"),
        "below_one_pulse": float((np.abs(requested[asked]) < pulse).mean()) if pulsed and asked.any() else float("nan"),
        "at_bounds": at_bounds,
        "cosine_kept": cosine(kept, requested),
        "norm_ratio_kept": float(np.linalg.norm(kept) / np.linalg.norm(requested)) if asked.any() else float("nan"),
    }


class FidelityProbe:
    """A rule that behaves as `rule` and samples update fidelity every `every` steps (`rows`)."""

    def __init__(self, rule, every: int, steps_per_epoch: int):
        self.rule, self.every, self.steps_per_epoch = rule, every, steps_per_epoch
        self.count = 0
        self.rows: list[dict] = []

    def __getattr__(self, name):  # loss, params, signals, ...: the wrapped rule's
        return getattr(self.rule, name)

    def step(self, net, x, y, lr):
        """The wrapped rule's step; every `every`-th step, also its fidelity per crossbar (rows)."""
        self.count += 1
        if (self.count - 1) % self.every:
            return self.rule.step(net, x, y, lr)
        crossbars = net.crossbars()
        before = [backend.to_numpy(c.weights()).astype(np.float64) for c in crossbars]
        kept_before = [backend.to_numpy(c.kept_weights()).astype(np.float64) for c in crossbars]
        requested = [np.zeros_like(w) for w in before]

        def observe(crossbar, x_rows, d, step_lr):
            requested[crossbars.index(crossbar)] += _requested(crossbar, x_rows, d, step_lr)

        for c in crossbars:
            c.observer = observe
        try:
            metrics = self.rule.step(net, x, y, lr)
        finally:
            for c in crossbars:
                c.observer = None
        epoch = (self.count - 1) // self.steps_per_epoch + 1
        for k, (c, w0, k0, req) in enumerate(zip(crossbars, before, kept_before, requested), 1):
            after, kept = (backend.to_numpy(w).astype(np.float64) for w in (c.weights(), c.kept_weights()))
            self.rows.append({"epoch": epoch, "step": self.count, "layer": k,
                              **layer_fidelity(c, w0, after, req, k0, kept)})
        return metrics
