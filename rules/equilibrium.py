"""Equilibrium propagation (Scellier & Bengio 2017, "Equilibrium propagation: bridging the gap
between energy-based models and backpropagation"), in its centred form (Laborieux et al. 2021,
"Scaling equilibrium propagation to deep ConvNets by drastically reducing its gradient estimator
bias"; Scellier et al. 2023 compare the positive, negative and centred forms), on crossbar
primitives. Every crossbar is read both ways.

A layered network with symmetric coupling, states s_1..s_L (s_0 = x), has the energy

    E(s) = sum_l G(s_l) - s_l^T (W_l s_{l-1} + b_l),     grad G = rho^-1 (ReLU: G(s) = s^2/2 on s >= 0)

whose minimum in s_l, the others held, is

    s_l = rho(W_l s_{l-1} + b_l + W_{l+1}^T s_{l+1})     a forward read of W_l, a transposed read of W_{l+1}
    s_L = W_L s_{L-1} + b_L - beta dC/ds_L               the output (linear), nudged towards the target

(C: mse 1/2 ||s_L - onehot(y)||^2, or ce of softmax(s_L)). The relaxation updates the odd layers,
then the even ones (block coordinate descent on E + beta C: it never increases the energy): from a
feed-forward pass, `free_steps` sweeps at beta = 0 to s*, then from s* `nudged_steps` sweeps at
+beta and at -beta. With dE/dW_l = -s_l s_{l-1}^T the estimate of dC(s*)/dW_l is

    centred    g_l = -(1 / 2 beta) (s_l^+ s_{l-1}^+T - s_l^- s_{l-1}^-T)     error O(beta^2)
    positive   g_l = -(1 / beta)   (s_l^+ s_{l-1}^+T - s_l^* s_{l-1}^*T)     error O(beta)
    negative   g_l = -(1 / beta)   (s_l^* s_{l-1}^*T - s_l^- s_{l-1}^-T)     error O(beta)

averaged over the batch, one pulsed update per crossbar with the two states' rows stacked.
`predict` is the free phase's output. A step reads every crossbar about
(free_steps + 2 nudged_steps) times forward and as often transposed (the output layer's W_L only
forward once per sweep).

Two options change the dynamics, not the fixed point:

    step_size in (0, 1]  s_l <- (1 - step_size) s_l + step_size rho(...)     (damping; 1 is the plain sweep)
    readout separate   s_L = W_L s_{L-1} + b_L is read out, not a state of the energy: the free
                       phase relaxes s_1..s_{L-1} alone, the nudge is -beta W_L^T dC/ds_L on
                       s_{L-1} (a transposed read of W_L), and W_L itself is trained on its exact
                       gradient dC/ds_L s*_{L-1}^T at the free state (Laborieux et al. 2021's
                       softmax read-out, made for loss ce)

Convolutional blocks take part as they are: W_l s_{l-1} is pool(conv(W_l, s_{l-1})) and its
transpose routes s_l back through the max-pool switches of that same read, so the energy is the
one above with the pooled convolution as its linear map while the switches hold (Laborieux et al.
route the feedback through the switches the same way).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.rules.base import LossOption, NetworkPlan, Rule, Signals, check_finite, output_metrics

VARIANTS = ("centred", "positive", "negative")
READOUTS = ("energy", "separate")
MAX_STEPS = 1000


class EquilibriumPropagation(Rule):
    """Equilibrium propagation, centred (Laborieux et al. 2021): relax, nudge both ways, contrast the states."""

    name = "ep"

    def __init__(self, beta: Annotated[float, "nudging strength beta > 0"] = 0.2,
                 free_steps: Annotated[int, f"relaxation sweeps of the free phase, 1-{MAX_STEPS}"] = 20,
                 nudged_steps: Annotated[int, f"relaxation sweeps of each nudged phase, 1-{MAX_STEPS}"] = 8,
                 variant: Annotated[str, "centred (+beta and -beta) | positive (+beta) | negative (-beta)"] = "centred",
                 step_size: Annotated[float, "relaxation step (damping) in (0, 1]; 1: each sweep sets the state"] = 1.0,
                 readout: Annotated[str, "energy (s_L is a state) | separate (a read-out of s_{L-1} outside the energy)"] = "energy",
                 loss: LossOption = "mse"):
        super().__init__(loss)
        if not (np.isfinite(beta) and beta > 0):
            raise HiltError(f"--beta must be a finite number > 0 (got {beta})")
        for flag, steps in (("--free-steps", free_steps), ("--nudged-steps", nudged_steps)):
            if not 1 <= steps <= MAX_STEPS:
                raise HiltError(f"{flag} must be in [1, {MAX_STEPS}] (got {steps})")
        if variant not in VARIANTS:
            raise HiltError(f"--variant {variant!r}: allowed: {', '.join(VARIANTS)}")
        self.beta, self.free_steps, self.nudged_steps = float(beta), int(free_steps), int(nudged_steps)
        if not (np.isfinite(step_size) and 0 < step_size <= 1):
            raise HiltError(f"--step-size must be in (0, 1] (got {step_size})")
        if readout not in READOUTS:
            raise HiltError(f"--readout {readout!r}: allowed: {', '.join(READOUTS)}")
        self.variant, self.step_size, self.readout = variant, float(step_size), readout

    def network_plan(self, data) -> NetworkPlan:
        """The dataset's MLP or a cnn (its readout is the linear output layer s_L)."""
        return NetworkPlan(data.input_shape, True, data.default_model, model_kinds=("mlp", "cnn"))

    def feed_forward(self, net, x) -> list:
        """States s_0..s_L of one forward pass: where the free phase starts."""
        states = [backend.asarray(x)]
        for block in net.blocks:
            a, _ = block.forward(states[-1])
            states.append(block.act(a))
        return states

    def relax(self, net, states: list, steps: int, beta: float = 0.0, y=None) -> list:
        """`steps` sweeps (odd layers, then even) from `states`, nudged by beta towards y."""
        states, L = list(states), len(net.blocks)
        top = L - 1 if self.readout == "separate" else L  # the last layer of the energy
        for _ in range(steps):
            for parity in (1, 0):
                for l in range(1 + (1 - parity), top + 1, 2):
                    a, _ = net.blocks[l - 1].forward(states[l - 1])
                    if l < top:
                        above = net.blocks[l]
                        a = a + above.backward(states[l + 1], above.cache_for(states[l]))
                    elif l < L and beta:  # the separate read-out's nudge: -beta W_L^T dC/ds_L
                        above = net.blocks[l]
                        out, cache = above.forward(states[l])
                        a = a - beta * above.backward(self.loss(out, y)[1], cache)
                    elif l == L:
                        a = a - beta * self.loss(states[l], y)[1] if beta else a
                    new = net.blocks[l - 1].act(a) if l < L else a
                    states[l] = new if self.step_size == 1 else states[l] + self.step_size * (new - states[l])
                    check_finite(states[l], "states", l)
        if top < L:
            states[L], _ = net.blocks[-1].forward(states[L - 1])
        return states

    def free_phase(self, net, x) -> list:
        """s*: the free phase's states (beta = 0)."""
        return self.relax(net, self.feed_forward(net, x), self.free_steps)

    def signals(self, net, x, y):
        B = len(x)
        free = self.free_phase(net, x)
        out = free[-1]
        metrics = output_metrics(out, y, self.loss(out, y)[0])
        plus = self.relax(net, free, self.nudged_steps, self.beta, y) if self.variant != "negative" else free
        minus = self.relax(net, free, self.nudged_steps, -self.beta, y) if self.variant != "positive" else free
        scale = (2 if self.variant == "centred" else 1) * self.beta * B
        xp, blocks = backend.xp(), []
        for l, block in enumerate(net.blocks, 1):
            if l == len(net.blocks) and self.readout == "separate":  # the read-out's exact gradient at s*
                blocks.append((self.loss(out, y)[1] / B, block.cache_for(free[l - 1])))
                continue
            rows = xp.concatenate([plus[l - 1], minus[l - 1]])
            d = xp.concatenate([-plus[l], minus[l]]) / scale
            blocks.append((d, block.cache_for(rows)))
        return Signals(metrics, blocks)

    def predict(self, net, x):
        """The free phase's output s_L (batch x n_classes)."""
        return self.free_phase(net, x)[-1]
