"""Device curves you can see (`hilt devices plot`): the pulse response of presets, device files and
NeuroSim devices side by side, with their noise, and the step each pulse makes against the weight.

The curves are aihwkit's own: a tile of the device's rpu config (after `--set` and `--update`)
is pulsed one pulse at a time (update management off, one bit per pulse, as aihwkit's
`plot_device_compact` does) from w_min, `cycles` times up across the range then down, and its
weights are read after every pulse. With `--update` the weight is the compound's effective weight
(for `mp`, a pulse is a step of the digital accumulator, which the device receives only when a
whole step has gathered).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hilt.errors import DeviceError

TRACES = 3  # devices (tile columns) pulsed side by side: their spread shows
MAX_PULSES = 5000  # per direction and cycle


@dataclass
class Response:
    """One device's pulse response: weights after each pulse (pulses x traces) and the pulses."""

    label: str
    weights: np.ndarray
    direction: np.ndarray  # +1 / -1 per pulse
    clean: np.ndarray  # the same pulses on one device with its noise off (pulses,)

    def steps(self, sign: int, clean: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(weight before, change) of every pulse of direction `sign`, all traces (or the noise-free one)."""
        w = self.clean[:, None] if clean else self.weights
        sel = self.direction[1:] == sign
        return w[:-1][sel].ravel(), np.diff(w, axis=0)[sel].ravel()

    def median_step(self, sign: int) -> float:
        """The median change of one pulse of direction `sign`, noise off."""
        return float(np.median(self.steps(sign, clean=True)[1]))


def pulse_response(name: str, sets: list[str] | None = None, update: str | None = None, cycles: int = 2,
                   pulses: int | None = None, seed: int = 0) -> Response:
    """The pulse response of device `name` (a preset, NeuroSim device or device file) with `sets`
    and `update`: `cycles` of `pulses` up then `pulses` down (default: aihwkit's estimate of the
    pulses across the range)."""
    import torch
    from aihwkit.utils.visualization import compute_pulse_response, estimate_n_steps, get_tile_for_plotting

    from hilt.devices.presets import parse_device

    if not 1 <= cycles <= 20:
        raise DeviceError(f"--cycles must be in [1, 20] (got {cycles})")
    if pulses is not None and not 1 <= pulses <= MAX_PULSES:
        raise DeviceError(f"--pulses must be in [1, {MAX_PULSES}] (got {pulses})")
    spec = parse_device(name, sets or [], seed=seed, update=update)
    if spec.base == "exact":
        raise DeviceError("devices plot: 'exact' is the float path, it has no pulse response")
    cfg = spec.rpu_config()
    n = int(min(pulses or estimate_n_steps(cfg), MAX_PULSES))
    torch.manual_seed(seed)
    direction = np.tile(np.r_[np.ones(n), -np.ones(n)], cycles)
    runs = []
    for traces, config in ((TRACES, cfg), (1, _noise_free(cfg))):
        tile = get_tile_for_plotting(config, traces)
        start = tile.get_weights()[0].detach().cpu().numpy().reshape(1, -1)
        runs.append(np.vstack([start, compute_pulse_response(tile, direction).reshape(len(direction), -1)]))
    label = name if update is None else f"{name} --update {update}"
    if sets:
        label += " " + " ".join(f"--set {s}" for s in sets)
    return Response(label, runs[0], np.r_[0, direction], runs[1][:, 0])


def _noise_free(cfg):
    """The rpu config with its devices' cycle-to-cycle and write noise and its reads' noise off
    (aihwkit's own `noise_free` option fails on the Tiki-Taka compounds)."""
    import copy

    from hilt.devices.presets import leaf_devices

    cfg = copy.deepcopy(cfg)
    for device in [cfg.device, *leaf_devices(cfg.device)]:
        for name in ("dw_min_std", "write_noise_std"):
            if hasattr(device, name):
                setattr(device, name, 0.0)
    cfg.forward.is_perfect = True
    return cfg


def plot_responses(responses: list[Response], path: Path) -> None:
    """One row per device: its weight against pulse number (every trace), and the change of one
    pulse against the weight before it, up (blue) and down (red): dots with the device's noise,
    a line with it off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(responses), 2, figsize=(12, 2.8 * len(responses)), squeeze=False,
                             gridspec_kw={"width_ratios": [2, 1]})
    for (ax, ax_step), r in zip(axes, responses):
        ax.plot(r.weights, lw=0.7)
        ax.set_title(r.label, fontsize=9, loc="left")
        ax.set_ylabel("weight")
        for sign, colour, name in ((1, "tab:blue", "up"), (-1, "tab:red", "down")):
            w, dw = r.steps(sign)
            ax_step.scatter(w, dw, s=2, color=colour, alpha=0.15, lw=0)
            w, dw = r.steps(sign, clean=True)
            order = np.argsort(w)
            ax_step.plot(w[order], dw[order], color=colour, lw=1.2, label=f"{name} (noise off)")
        clean = np.abs(np.diff(r.clean))
        if clean.max() > 0:  # the noise-free steps set the scale; the noisy ones may leave it
            ax_step.set_ylim(-4 * clean.max(), 4 * clean.max())
        ax_step.axhline(0, color="0.5", lw=0.5)
        ax_step.set_ylabel("change per pulse")
        ax_step.legend(loc="best", fontsize=7, markerscale=4)
    axes[-1][0].set_xlabel("pulse number")
    axes[-1][1].set_xlabel("weight before the pulse")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
