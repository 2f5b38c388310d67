"""Crossbars for inference studies: a trained network's weights on aihwkit InferenceTiles.

aihwkit's own inference machinery does the physics: `program_weights()` applies the PCM-like
programming noise of the config's noise model, `drift_weights(t)` the conductance drift and
read noise accumulated t seconds after programming, and the config's drift compensation (global,
from a reference read) rescales the outputs. Reads go through the tile's forward IO (read
noise, DAC/ADC). Stuck devices have no aihwkit model: a fraction of weights is set to zero
(open devices) before programming, drawn per crossbar.

Forward and transposed reads (equilibrium propagation's prediction relaxes through both); `update`
raises. One tile per crossbar (no splitting), and the
largest |W| maps to the full conductance range (aihwkit's weight_scaling_omega = 1).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hilt.analog import backend
from hilt.analog.crossbar import Crossbar


class InferenceCrossbar(Crossbar):
    def __init__(self, out_size, in_size, bias, rpu_config, stuck: float = 0.0, rng: np.random.Generator | None = None):
        super().__init__(out_size, in_size, bias)
        from aihwkit.simulator.tiles.inference import InferenceTile

        self.tile = InferenceTile(self.out_size, self.in_size, rpu_config, bias=self.bias)
        self.stuck, self.rng = stuck, rng or np.random.default_rng()

    def _forward(self, x):
        return self.tile.joint_forward(backend.to_torch(backend.to_numpy(x)), is_test=True).numpy(), None

    def _backward(self, d, clipped):
        """Transposed read through the tile's backward IO (a rule whose prediction relaxes, as ep's)."""
        return self.tile.backward(backend.to_torch(backend.to_numpy(d))).numpy()

    def _update(self, x, d, lr):
        raise NotImplementedError("an inference crossbar is read only")

    def _weights(self):
        w, b = self.tile.get_weights()
        return np.concatenate([w.numpy(), b.numpy()[:, None]], axis=1) if b is not None else w.numpy()

    def _program(self, W):
        W = backend.to_numpy(W).copy()
        if self.stuck > 0:
            W[self.rng.random(W.shape) < self.stuck] = 0.0
        bias = backend.to_torch(W[:, self.in_size]) if self.bias else None
        self.tile.set_weights(backend.to_torch(W[:, : self.in_size]), bias)
        self.tile.program_weights()

    def drift(self, t_seconds: float) -> None:
        """Conductance drift (and its noise) t seconds after programming, then drift compensation."""
        self.tile.drift_weights(t_seconds)


def inference_factory(rpu_config: Callable[[], object], stuck: float, seed: int):
    """A crossbar factory for build_network: every crossbar its own tile from a fresh config."""
    from hilt.analog.network import ANALOG_BYTES_PER_WEIGHT, CrossbarFactory

    rng = np.random.default_rng(seed)
    return CrossbarFactory(lambda out, inp, bias: InferenceCrossbar(out, inp, bias, rpu_config(), stuck, rng),
                           ANALOG_BYTES_PER_WEIGHT)
