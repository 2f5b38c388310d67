"""Fit an aihwkit pulsed device model to measured pulse-response data (`hilt devices fit`; docs: your-own-device.md).

Data: a CSV with `pulse` (signed pulses applied before the read: +1 up, -1 down, or a count) and
`conductance` (the value read after them), optionally `trace` (cycles) and `device` columns.
The first row of each trace is its starting point (its pulse is not used). Conductance maps
linearly to weight units: G_min -> w_min, G_max -> w_max (the data's range unless given).

How it fits (aihwkit.utils.fitting's pieces, with lmfit):
- every row of n pulses becomes n single pulses, and a trace is cut, at reads, into segments of
  at most SEGMENT pulses. Each segment is one column of one aihwkit tile, started from its
  measured first value, so the whole data set is simulated in SEGMENT-ish tile updates
  (`model_response`) and a long trace's model does not drift away from the device;
- the residual is model minus measured at the reads only (not at the pulses in between), so
  counts and traces of unequal length need no padding of the data; aihwkit's own
  `fit_measurements` compares every simulated step with a response of the same shape, which
  these data do not have, so the same lmfit minimisation is called here on the masked residual;
- lmfit Powell (fit_measurements' default), then a Levenberg-Marquardt polish for the
  parameters' standard errors; device noise is off while fitting (as fit_measurements does);
- `piecewise` is not minimised: its step table is the least-squares fit of the measured steps
  per pulse on a hat basis over the weight range (smoothed where the data are thin);
- cycle-to-cycle spread dw_min_std: the one-pulse-ahead residuals of the fitted model, relative
  to its step (aihwkit's noise is relative to the step for every model here); read noise adds to
  it, so it is an upper bound. Device-to-device spread dw_min_dtod: with several devices, the
  relative spread of dw_min refitted per device, the other parameters held.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hilt.errors import DeviceError
from hilt.devices.device_file import FORMAT, MODELS, NO_SPREAD, device_class

SEGMENT = 20  # pulses per simulated segment (short: c2c noise does not accumulate in it)
PIECEWISE_NODES = 11
ONE_STEP_MAX = 16  # rows of at most this many pulses estimate dw_min_std


@dataclass
class Trace:
    device: str
    pulses: np.ndarray  # int, per row (row 0's is not used)
    w: np.ndarray  # read values in weight units


@dataclass
class Measurements:
    traces: list[Trace]
    g_range: tuple[float, float]
    w_range: tuple[float, float]
    source: str

    @property
    def rows(self) -> int:
        """The number of reads, all traces together."""
        return sum(len(t.w) for t in self.traces)

    @property
    def devices(self) -> list[str]:
        """The device names, in order of first appearance."""
        return list(dict.fromkeys(t.device for t in self.traces))

    def to_conductance(self, w):
        """Weights (weight units) back to conductances (the data's units), by the linear map."""
        (g0, g1), (w0, w1) = self.g_range, self.w_range
        return g0 + (np.asarray(w) - w0) / (w1 - w0) * (g1 - g0)


def read_measurements(path: str, g_min: float | None = None, g_max: float | None = None,
                      w_min: float = -1.0, w_max: float = 1.0) -> Measurements:
    """The traces of a pulse-response CSV, in weight units (DeviceError naming the problem)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DeviceError(f"devices fit: no such file {path}") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DeviceError(f"devices fit: cannot read {path} as CSV ({str(err).splitlines()[0]})") from None
    missing = [c for c in ("pulse", "conductance") if c not in frame.columns]
    if missing:
        raise DeviceError(f"devices fit: {path} has no column {', '.join(missing)}; needed: pulse, conductance "
                          f"(optional: trace, device); found: {', '.join(map(str, frame.columns))}")
    for column in ("pulse", "conductance"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if len(bad):
            raise DeviceError(f"devices fit: {path} line {bad[0] + 2}: {column} = {frame[column].iloc[bad[0]]!r} "
                              "is not a finite number")
        frame[column] = values
    if not np.all(frame["pulse"] == np.round(frame["pulse"])):
        raise DeviceError(f"devices fit: {path}: pulse must be whole signed pulse counts (+1, -1, 5, ...)")
    g = frame["conductance"].to_numpy(dtype=float)
    g0 = float(g.min()) if g_min is None else g_min
    g1 = float(g.max()) if g_max is None else g_max
    if not g1 > g0:
        raise DeviceError(f"devices fit: {path}: the conductance does not change (range {g0:g} to {g1:g})")
    if not w_max > w_min:
        raise DeviceError(f"devices fit: --w-max ({w_max}) must be larger than --w-min ({w_min})")
    keys = [c for c in ("device", "trace") if c in frame.columns]
    groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
    traces = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        device = str(key[0]) if "device" in keys else "0"
        w = w_min + (part["conductance"].to_numpy(dtype=float) - g0) / (g1 - g0) * (w_max - w_min)
        traces.append(Trace(device, part["pulse"].to_numpy(dtype=np.int64), w))
    applied = np.concatenate([t.pulses[1:] for t in traces])
    if not (applied > 0).any() or not (applied < 0).any():
        raise DeviceError(f"devices fit: {path} has only {'up' if (applied > 0).any() else 'down'} pulses; "
                          "a device model needs both directions (pulse > 0 and pulse < 0)")
    return Measurements(traces, (g0, g1), (w_min, w_max), str(path))


@dataclass
class Layout:
    """Single-pulse segments as tile columns: pulses[t] leads from state t to t + 1."""

    pulses: np.ndarray  # (steps, columns) of -1, 0, +1
    target: np.ndarray  # (steps, columns): the read values (row 0: the start)
    mask: np.ndarray  # (steps, columns): where a read is compared
    device: np.ndarray  # (columns,) device index
    where: list  # per column: (trace index, first row, rows)


def layout(meas: Measurements, segment: int = SEGMENT) -> Layout:
    """The measurements cut into simulated columns of at most `segment` single pulses each, started
    from their first read."""
    columns = []  # (pulses, states with NaN where not read, device index, where)
    devices = meas.devices
    for index, trace in enumerate(meas.traces):
        start = 0
        while start < len(trace.w) - 1:
            pulses, states, rows = [], [trace.w[start]], 1
            for k in range(start + 1, len(trace.w)):
                n = int(abs(trace.pulses[k]))
                if rows > 1 and len(pulses) + max(n, 1) > segment:
                    break
                pulses += [int(np.sign(trace.pulses[k]))] * n if n else [0]
                states += [math.nan] * (max(n, 1) - 1) + [trace.w[k]]
                rows += 1
            columns.append((pulses, states, devices.index(trace.device), (index, start, rows)))
            start += rows - 1
    steps = max(len(states) for _, states, _, _ in columns)
    P = np.zeros((steps, len(columns)), np.float32)
    R = np.full((steps, len(columns)), np.nan)
    for j, (pulses, states, _, _) in enumerate(columns):
        P[: len(pulses), j] = pulses
        R[: len(states), j] = states
    mask = np.isfinite(R)
    mask[0] = False
    return Layout(P, np.nan_to_num(R), mask, np.array([c[2] for c in columns]), [c[3] for c in columns])


def _noise_off(device) -> None:
    for f in dataclasses.fields(device):
        if f.name.endswith("dtod") or f.name.endswith("std"):
            setattr(device, f.name, 0.0)


def _single_pulses(cfg):
    """An update of x = +-1, d = -1 at lr 1 is exactly one pulse (as aihwkit's fit_measurements sets it up)."""
    cfg.update.desired_bl = 1
    cfg.update.update_bl_management = cfg.update.update_management = False
    return cfg


def fit_config(device):
    """One device, noise off, one pulse per update."""
    from aihwkit.simulator.configs import SingleRPUConfig

    device = copy.deepcopy(device)
    _noise_off(device)
    return _single_pulses(SingleRPUConfig(device=device))


def simulate(cfg, lay: Layout, params=None) -> np.ndarray:
    """The response of every column of the layout under rpu config cfg with lmfit `params` (columns
    x pulses, weight units)."""
    from aihwkit.utils.fitting import model_response
    from lmfit import Parameters

    return model_response(params or Parameters(), lay.pulses, lay.target, cfg, only_response=True)


def initial_parameters(model: str, meas: Measurements) -> dict[str, tuple[float, float, float]]:
    """(start, min, max) of every parameter lmfit varies for `model`."""
    step = _median_step(meas)
    every = np.concatenate([t.w for t in meas.traces])
    lo, hi = float(every.min()), float(every.max())  # every model clips at its bounds: they hold the data
    span = hi - lo
    params = {"dw_min": (step, step / 20, min(0.5, step * 20)), "up_down": (0.0, -0.95, 0.95),
              "w_min": (lo - 0.05 * span, lo - 4 * span, lo), "w_max": (hi + 0.05 * span, hi, hi + 4 * span)}
    if model == "linear":
        params |= {"gamma_up": (0.5, 0.0, 1.0), "gamma_down": (0.5, 0.0, 1.0)}
    elif model == "exp":
        params |= {"A_up": (0.1, 0.0, 5.0), "A_down": (0.1, 0.0, 5.0), "gamma_up": (2.0, 0.0, 30.0),
                   "gamma_down": (2.0, 0.0, 30.0)}
    elif model == "pow":
        params |= {"pow_gamma": (1.0, 0.05, 10.0)}
    return params


def _median_step(meas: Measurements) -> float:
    steps = np.concatenate([np.abs(np.diff(t.w))[t.pulses[1:] != 0] / np.abs(t.pulses[1:][t.pulses[1:] != 0])
                            for t in meas.traces])
    moving = steps[steps > 0]
    return float(np.median(moving)) if len(moving) else float((meas.w_range[1] - meas.w_range[0]) / 100)


@dataclass
class Fit:
    model: str
    params: dict[str, float | list]  # the device's parameters (fitted and fixed, spreads included)
    stderr: dict[str, float | None]  # of the varied parameters
    rmse: float  # weight units, at the reads
    seconds: float
    evaluations: int
    layout: Layout  # the data as simulated
    response: np.ndarray  # the fitted model at every layout position

    @property
    def states(self) -> float:
        """The number of pulse steps across the weight range, (w_max - w_min) / dw_min."""
        return (self.params["w_max"] - self.params["w_min"]) / self.params["dw_min"]


def fit(meas: Measurements, model: str) -> Fit:
    """Fit `model` (a key of MODELS) to the measurements: parameters, their 1-sigma errors, RMSE in
    weight units, spreads."""
    if model not in MODELS:
        raise DeviceError(f"devices fit --model {model}: unknown model; allowed: {', '.join(MODELS)}")
    started = time.perf_counter()
    lay = layout(meas)
    if model == "piecewise":
        params, stderr, evaluations = _piecewise(meas), {}, 1
    else:
        params, stderr, evaluations = _minimise(model, meas, lay)
    device = device_class(MODELS[model])(**params)
    response = simulate(fit_config(device), lay)
    rmse = float(np.sqrt(np.mean((response - lay.target)[lay.mask] ** 2)))
    params = {**params, **NO_SPREAD, "dw_min_std": one_step_spread(device, meas)}
    if len(meas.devices) > 1:
        params["dw_min_dtod"] = device_spread(device, lay)
    return Fit(model, params, stderr, rmse, time.perf_counter() - started, evaluations, lay, response)


def _minimise(model: str, meas: Measurements, lay: Layout):
    from lmfit import Parameters, minimize

    start = initial_parameters(model, meas)
    if meas.rows - len(meas.traces) <= len(start):
        raise DeviceError(f"devices fit --model {model}: {meas.rows - len(meas.traces)} reads after pulses for "
                          f"{len(start)} parameters ({', '.join(start)}); give more data or a simpler model")
    params = Parameters()
    for name, (value, lo, hi) in start.items():
        params.add(name, value=value, min=lo, max=hi)
    cfg = fit_config(device_class(MODELS[model])())

    def residual(p):
        return (simulate(cfg, lay, p) - lay.target)[lay.mask]

    result = minimize(residual, params, method="powell")
    polished = minimize(residual, result.params, method="leastsq", epsfcn=1e-6, max_nfev=30 * (len(start) + 1))
    best = polished if polished.chisqr <= result.chisqr else result
    values = {name: float(best.params[name].value) for name in start}
    stderr = {name: (None if polished.params[name].stderr is None else float(polished.params[name].stderr))
              for name in start}
    return values, stderr, result.nfev + polished.nfev


def _piecewise(meas: Measurements) -> dict:
    """Step per pulse up and down at PIECEWISE_NODES nodes over the data's weight range: least squares
    on hat functions with a small second-difference penalty (which fills nodes without data)."""
    lo, hi = meas.w_range
    nodes = np.linspace(lo, hi, PIECEWISE_NODES)
    steps = {}
    for sign in (1, -1):
        rows = [(t.w[k - 1], t.w[k], t.pulses[k]) for t in meas.traces for k in range(1, len(t.w))
                if np.sign(t.pulses[k]) == sign]
        before, after, n = (np.array(v, float) for v in zip(*rows))
        at = np.clip((before + after) / 2, lo, hi)
        basis = np.clip(1 - np.abs(at[:, None] - nodes[None, :]) / (nodes[1] - nodes[0]), 0, None)
        smooth = np.diff(np.eye(PIECEWISE_NODES), 2, axis=0) * math.sqrt(len(at) * 1e-3)
        target = sign * (after - before) / np.abs(n)
        solution = np.linalg.lstsq(np.vstack([basis, smooth]), np.r_[target, np.zeros(len(smooth))], rcond=None)[0]
        steps[sign] = np.clip(solution, 0, None)
    dw_min = float(np.concatenate([steps[1], steps[-1]]).mean())
    if not dw_min > 0:
        raise DeviceError("devices fit --model piecewise: the measured steps average to zero")
    return {"dw_min": dw_min, "up_down": 0.0, "w_min": lo, "w_max": hi,
            "piecewise_up": [float(v) for v in steps[1] / dw_min], "piecewise_down": [float(v) for v in steps[-1] / dw_min]}


def one_step_spread(device, meas: Measurements) -> float:
    """dw_min_std from the residuals of one-row-ahead predictions (rows of 1..ONE_STEP_MAX pulses)."""
    starts, counts, reads = [], [], []
    for t in meas.traces:
        n = np.abs(t.pulses[1:])
        keep = (n >= 1) & (n <= ONE_STEP_MAX)
        starts.append(t.w[:-1][keep])
        reads.append(t.w[1:][keep])
        counts.append(n[keep] * np.sign(t.pulses[1:][keep]))
    start, read, count = np.concatenate(starts), np.concatenate(reads), np.concatenate(counts)
    if not len(start):
        return 0.0
    steps = int(np.abs(count).max())
    P = (np.arange(steps + 1)[:, None] < np.abs(count)[None, :]) * np.sign(count)[None, :]
    R = np.zeros_like(P, dtype=float)
    R[0] = start
    lay = Layout(P.astype(np.float32), R, np.zeros_like(P, bool), np.zeros(len(start), int), [])
    predicted = simulate(fit_config(device), lay)[np.abs(count), np.arange(len(start))]
    per_pulse = (predicted - start) / np.abs(count)
    moving = np.abs(per_pulse) > 0.05 * device.dw_min  # a model step clipped at a bound says nothing
    if not moving.any():
        return 0.0
    r = (read - predicted)[moving]
    return float(math.sqrt(np.sum(r**2) / np.sum(np.abs(count[moving]) * per_pulse[moving] ** 2)))


def device_spread(device, lay: Layout) -> float:
    """Relative spread of dw_min over devices, each refitted with the other parameters fixed."""
    from scipy.optimize import minimize_scalar

    cfg = fit_config(device)
    per_device = []
    for index in np.unique(lay.device):
        cols = lay.device == index
        sub = Layout(lay.pulses[:, cols], lay.target[:, cols], lay.mask[:, cols], lay.device[cols], [])

        def sse(log_scale):
            cfg.device.dw_min = device.dw_min * math.exp(log_scale)
            return float(np.sum(((simulate(cfg, sub) - sub.target)[sub.mask]) ** 2))

        best = minimize_scalar(sse, bounds=(-2.0, 2.0), method="bounded", options={"xatol": 1e-3})
        per_device.append(device.dw_min * math.exp(best.x))
    return float(np.std(per_device) / np.mean(per_device))


def preset_errors(lay: Layout) -> list[tuple[str, float]]:
    """RMSE (weight units) of every pulsed preset's device, as it is, on the same data, best first."""
    from hilt.devices.presets import PRESET_UPDATES, PRESETS, base_rpu_config
    from hilt.devices.params import leaf_devices

    errors = []
    for name in PRESETS:
        if name in ("exact", "ideal") or name in PRESET_UPDATES:
            continue
        cfg = _single_pulses(base_rpu_config(name))
        for d in leaf_devices(cfg.device):
            _noise_off(d)
        response = simulate(cfg, lay)
        errors.append((name, float(np.sqrt(np.mean((response - lay.target)[lay.mask] ** 2)))))
    return sorted(errors, key=lambda e: e[1])


def definition(result: Fit, meas: Measurements, name: str) -> dict:
    """The device definition (a device file's content) of a fit, named `name`."""
    span = meas.w_range[1] - meas.w_range[0]
    return {
        "format": FORMAT, "name": name,
        "description": f"{MODELS[result.model]} fitted to {Path(meas.source).name} ({meas.rows} reads)",
        "device": {"class": MODELS[result.model], "params": result.params},
        "fit": {"model": result.model, "data": Path(meas.source).name, "reads": meas.rows,
                "traces": len(meas.traces), "devices": len(meas.devices),
                "conductance_range": list(meas.g_range), "weight_range": list(meas.w_range),
                "rmse": result.rmse, "rmse_of_range": result.rmse / span, "states": result.states,
                "stderr": result.stderr, "seconds": round(result.seconds, 2), "evaluations": result.evaluations,
                "dw_min_std": "one-pulse-ahead residuals relative to the model's step; includes read noise (upper bound)",
                "dw_min_dtod": "relative spread of dw_min refitted per device" if len(meas.devices) > 1
                               else "not measured (one device): 0"},
    }


def plot_fit(result: Fit, meas: Measurements, path: Path) -> None:
    """Measured reads (dots, up and down rows coloured apart) and the fitted model (line, restarted
    from the measured value at every segment, as fitted), in conductance, against pulse number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lay = result.layout
    fig, ax = plt.subplots(figsize=(9, 4))
    offset, positions = 0, {}
    for index, trace in enumerate(meas.traces):
        positions[index] = offset + np.concatenate([[0], np.cumsum(np.maximum(np.abs(trace.pulses[1:]), 1))])
        offset = positions[index][-1] + 1
    for j, (index, first, rows) in enumerate(lay.where):
        x = positions[index][first] + np.arange(int(lay.mask[:, j].nonzero()[0].max()) + 1)
        ax.plot(x, meas.to_conductance(result.response[: len(x), j]), color="black", lw=0.8,
                label="fitted" if j == 0 else None)
    for index, trace in enumerate(meas.traces):
        x, g = positions[index], meas.to_conductance(trace.w)
        for sign, colour, label in ((1, "tab:blue", "measured, up"), (-1, "tab:red", "measured, down")):
            sel = np.sign(trace.pulses) == sign
            sel[0] = False
            ax.scatter(x[sel], g[sel], s=4, color=colour, label=label if index == 0 else None)
    ax.set_xlabel("pulse number")
    ax.set_ylabel("conductance")
    ax.set_title(f"{MODELS[result.model]}: RMSE {result.rmse / (meas.w_range[1] - meas.w_range[0]):.2%} of the range")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def synthetic_measurements(device, cycles: int = 4, pulses: int = 100, devices: int = 1, seed: int = 0,
                           read_noise: float = 0.0):
    """Rows (pulse, conductance, trace, device) that aihwkit's `device` (noise on) answers to
    `cycles` of `pulses` up then `pulses` down pulses, from w = 0: the round-trip tests' and the
    README example's data. Conductance = weight here."""
    import torch
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.tiles import AnalogTile

    cfg = _single_pulses(SingleRPUConfig(device=copy.deepcopy(device)))
    cfg.device.construction_seed = seed + 1
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tile = AnalogTile(1, devices, cfg)
    tile.set_learning_rate(1)
    tile.set_weights(torch.zeros(1, devices))
    sequence = np.tile(np.r_[np.ones(pulses), -np.ones(pulses)], cycles).astype(np.float32)
    rows = [(0, 0.0, 0, d) for d in range(devices)]
    for k, p in enumerate(sequence):
        tile.update(torch.full((devices,), float(p)), -torch.ones(1))
        w = tile.tile.get_weights()[0].numpy() + read_noise * rng.standard_normal(devices)
        rows += [(int(p), float(w[d]), 0, d) for d in range(devices)]
    return rows
