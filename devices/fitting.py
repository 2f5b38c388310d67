"""Fit an aihwkit pulsed device model to measured pulse-response data (`hilt devices fit`; docs: your-own-device.md).

Data: a CSV with `pulse` (signed pulses applied before the read: +1 up, -1 down, or a count) and
`conductance` (the value read after them), optionally `trace` (cycles) and `device` columns.
The first row of each trace is its starting point (its pulse is not used). A CSV of two numeric
columns without a header is read as aihwkit's example layout (the reads after each of a run of up
pulses, then after each of the down pulses that follow, as in Gong et al. 2018's data). Conductance maps
linearly to weight units: G_min -> w_min, G_max -> w_max (the data's range unless given).

How it fits (aihwkit.utils.fitting's pieces, with lmfit):
- each run of one pulse direction is smoothed (a local quadratic, its window chosen by
  leave-one-out error): the
  denoised state. The default conductance range is the smoothed reads' (noise does not widen it);
- every row of n pulses becomes n single pulses, and a trace is cut, at reads, into segments of
  at most SEGMENT pulses. Each segment is one column of one aihwkit tile, started from the
  smoothed state at its first read (a noisy read as the start biases the trend), so the whole
  data set is simulated in SEGMENT-ish tile updates (`model_response`) and a long trace's model
  does not drift away from the device;
- the residual is model minus measured at the reads only (not at the pulses in between), so
  counts and traces of unequal length need no padding of the data; aihwkit's own
  `fit_measurements` compares every simulated step with a response of the same shape, which
  these data do not have, so the same lmfit minimisation is called here on the masked residual;
- lmfit Powell (fit_measurements' default), then a Levenberg-Marquardt polish for the
  parameters' standard errors; device noise is off while fitting (as fit_measurements does);
- `piecewise` is not minimised: its step table is the least-squares fit of the smoothed steps
  per pulse on a hat basis over the weight range (smoothed where the data are thin);
- noise (`split_noise`, NoiseSplit): the scatter of the reads around the trend is split, by how
  the variance of k-pulse-ahead residuals grows with k, into noise that accumulates
  (cycle-to-cycle: aihwkit's dw_min_std) and noise that does not (read noise, or aihwkit's
  write_noise_std: where it goes is `non_accumulating`, a key of NON_ACCUMULATING), each with a
  95 % bootstrap interval. Device-to-device spread dw_min_dtod: with several devices, the
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

from hilt.errors import DeviceError, HiltError
from hilt.devices.device_file import FORMAT, MODELS, NO_SPREAD, NON_ACCUMULATING, device_class

MAX_ROW_PULSES = 100_000  # pulses before one read
MAX_PULSES = 10_000_000  # pulses in a file: every one is simulated (100 000 take about 2 s)
SEGMENT = 20  # pulses per simulated segment (short: c2c noise does not accumulate much in it)
PIECEWISE_NODES = 11
SMOOTH_WINDOWS = (5, 11, 21, 51)  # reads per local fit of the smoothed trend: the choices
NOISE_LAGS = 50  # pulses: the k of the k-pulse-ahead residuals that split the noise
NOISE_READS = 20_000  # at most about this many reads (whole runs, evenly spaced) split the noise
MARGIN = 10  # pulses: pairs whose model path meets a bound this soon after their second read are left out
ACTIVE = 0.25  # a step below this fraction of dw_min is the device at a bound (its noise is clipped there)


@dataclass
class Trace:
    device: str
    pulses: np.ndarray  # int, per row (row 0's is not used)
    w: np.ndarray  # read values in weight units
    smooth: np.ndarray  # the reads smoothed along each run of one pulse direction (the denoised state)


def runs(pulses: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) rows of each run of pulses of one direction (rows 1.. of a trace); the read
    before a run's first row is its start."""
    sign, edges = np.sign(pulses[1:]), []
    start = 1
    for k in range(2, len(pulses) + 1):
        if k == len(pulses) or sign[k - 1] != sign[k - 2]:
            edges.append((start, k - 1))
            start = k
    return [(a, b) for a, b in edges if pulses[a] != 0]


def smooth_reads(pulses: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The reads smoothed by a local quadratic (Savitzky-Golay) along each run of one pulse
    direction, its start included: the trend without the non-accumulating noise, from which
    segments start and the noise is measured. The window (5 to SMOOTH_WINDOW reads) is the one of
    least leave-one-out error, r_i / (1 - h), h the filter's weight on the read itself, pooled
    over the trace: noisy reads get a wide window, clean ones (whose kinks a wide window would
    round off) a narrow one. A run of fewer than 5 reads stays as read."""
    from scipy.signal import savgol_coeffs, savgol_filter

    parts = [(first, last) for first, last in runs(pulses) if last - first + 2 >= 5]
    by_length: dict[int, list[int]] = {}  # runs of one length are smoothed together
    for index, (first, last) in enumerate(parts):
        by_length.setdefault(last - first + 2, []).append(index)
    best, out = None, np.asarray(values, float).copy()
    for window in SMOOTH_WINDOWS:
        error, count, smoothed = 0.0, 0, [None] * len(parts)
        for length, members in by_length.items():
            w = min(window, length - (1 - length % 2))
            block = np.stack([values[parts[i][0] - 1:parts[i][1] + 1] for i in members])
            fitted = savgol_filter(block, w, 2, mode="interp", axis=1)
            h = savgol_coeffs(w, 2)[w // 2]
            error += float(np.sum(((block - fitted) / (1 - h)) ** 2))
            count += block.size
            for i, row in zip(members, fitted):
                smoothed[i] = row
        if count and (best is None or error / count < best[0]):
            best = (error / count, smoothed)
    if best is not None:
        for (first, last), fitted in zip(parts, best[1]):
            out[first:last + 1] = fitted[1:]
    return out


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

    for flag_name, g in (("--g-min", g_min), ("--g-max", g_max)):
        if g is not None and not math.isfinite(g):
            raise DeviceError(f"devices fit: {flag_name} {g} is not a finite number")

    import io

    from hilt.userfiles import MAX_TABLE_BYTES, read_text

    try:
        text = read_text(path, f"devices fit: {path}", MAX_TABLE_BYTES)
    except FileNotFoundError:
        raise DeviceError(f"devices fit: no such file {path}") from None
    except HiltError as err:
        raise DeviceError(str(err)) from None
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DeviceError(f"devices fit: cannot read {path} as CSV ({str(err).splitlines()[0]})") from None
    frame = _up_down_columns(frame) if _is_up_down(frame) else frame
    missing = [c for c in ("pulse", "conductance") if c not in frame.columns]
    if missing:
        raise DeviceError(f"devices fit: {path} has no column {', '.join(missing)}; needed: pulse, conductance "
                          f"(optional: trace, device); found: {', '.join(map(str, frame.columns))}")
    if len(frame) < 2:
        raise DeviceError(f"devices fit: {path} has {len(frame)} row(s) of data; a pulse response needs a starting "
                          "read and reads after pulses")
    for column in ("pulse", "conductance"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if len(bad):
            raise DeviceError(f"devices fit: {path} line {bad[0] + 2}: {column} = {frame[column].iloc[bad[0]]!r} "
                              "is not a finite number")
        frame[column] = values
    if not np.all(frame["pulse"] == np.round(frame["pulse"])):
        raise DeviceError(f"devices fit: {path}: pulse must be whole signed pulse counts (+1, -1, 5, ...)")
    # every pulse is simulated: the size is known before any work
    if frame["pulse"].abs().max() > MAX_ROW_PULSES or frame["pulse"].abs().sum() > MAX_PULSES:
        raise DeviceError(f"devices fit: {path}: at most {MAX_ROW_PULSES:,} pulses in a row and {MAX_PULSES:,} in all "
                          f"(found {frame['pulse'].abs().max():.0f} and {frame['pulse'].abs().sum():.0f})")
    keys = [c for c in ("device", "trace") if c in frame.columns]
    groups = list(frame.groupby(keys, sort=False)) if keys else [((), frame)]
    smooth = {key if isinstance(key, tuple) else (key,): smooth_reads(part["pulse"].to_numpy(np.int64),
                                                                      part["conductance"].to_numpy(float))
              for key, part in groups}
    g = np.concatenate(list(smooth.values()))  # the default range: the smoothed reads' (noise does not widen it)
    g0 = float(g.min()) if g_min is None else g_min
    g1 = float(g.max()) if g_max is None else g_max
    if not g1 > g0:
        raise DeviceError(f"devices fit: {path}: the conductance does not change (range {g0:g} to {g1:g})")
    if not (math.isfinite(w_min) and math.isfinite(w_max) and w_min < 0 < w_max):
        raise DeviceError(f"devices fit: --w-min {w_min}, --w-max {w_max}: finite numbers with --w-min < 0 < --w-max "
                          "(an aihwkit device's weights span 0)")
    traces = []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        device = str(key[0]) if "device" in keys else "0"
        to_w = lambda g: w_min + (g - g0) / (g1 - g0) * (w_max - w_min)  # noqa: E731
        traces.append(Trace(device, part["pulse"].to_numpy(dtype=np.int64),
                            to_w(part["conductance"].to_numpy(dtype=float)), to_w(smooth[key])))
    applied = np.concatenate([t.pulses[1:] for t in traces])
    if not (applied > 0).any() or not (applied < 0).any():
        raise DeviceError(f"devices fit: {path} has only {'up' if (applied > 0).any() else 'down'} pulses; "
                          "a device model needs both directions (pulse > 0 and pulse < 0)")
    return Measurements(traces, (g0, g1), (w_min, w_max), str(path))


def _is_up_down(frame) -> bool:
    """Two numeric columns and no header: aihwkit's example layout (examples/csv/gong_et_al.csv)."""
    if len(frame.columns) != 2:
        return False
    try:
        [float(c) for c in frame.columns]
    except ValueError:
        return False
    return True


def _up_down_columns(frame):
    """aihwkit's up/down layout as rows of this module's: column 1 holds the reads after each of a
    run of up pulses, column 2 the reads after each of the down pulses that follow; the first up
    read is the trace's start."""
    import pandas as pd

    header = pd.DataFrame([[float(c) for c in frame.columns]], columns=frame.columns)
    frame = pd.concat([header, frame], ignore_index=True).apply(pd.to_numeric, errors="coerce")
    up, down = frame.iloc[:, 0].dropna().to_numpy(float), frame.iloc[:, 1].dropna().to_numpy(float)
    pulses = np.r_[0, np.ones(len(up) - 1, np.int64), -np.ones(len(down), np.int64)]
    return pd.DataFrame({"pulse": pulses, "conductance": np.r_[up, down]})


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
    from the smoothed state at their first read (a noisy read as the start would bias the trend)."""
    columns = []  # (pulses, states with NaN where not read, device index, where)
    devices = meas.devices
    for index, trace in enumerate(meas.traces):
        start = 0
        while start < len(trace.w) - 1:
            pulses, states, rows = [], [trace.smooth[start]], 1
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
    every = np.concatenate([t.smooth for t in meas.traces])
    lo, hi = float(every.min()), float(every.max())  # every model clips at its bounds: they hold the (denoised) data
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
    # of the smoothed reads: a raw read's step is mostly its noise
    steps = np.concatenate([np.abs(np.diff(t.smooth))[t.pulses[1:] != 0] / np.abs(t.pulses[1:][t.pulses[1:] != 0])
                            for t in meas.traces])
    moving = steps[steps > 0]
    # the upper quartile: data that sit at a bound for most pulses have a median step near 0
    return float(np.percentile(moving, 75)) if len(moving) else float((meas.w_range[1] - meas.w_range[0]) / 100)


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
    noise: "NoiseSplit"  # the accumulating and the non-accumulating noise
    non_accumulating: str  # where the non-accumulating noise went (a key of NON_ACCUMULATING)

    @property
    def states(self) -> float:
        """The number of pulse steps across the weight range, (w_max - w_min) / dw_min."""
        return (self.params["w_max"] - self.params["w_min"]) / self.params["dw_min"]


def fit(meas: Measurements, model: str, non_accumulating: str = "write") -> Fit:
    """Fit `model` (a key of MODELS) to the measurements: parameters, their 1-sigma errors, RMSE in
    weight units, the two noises (the non-accumulating one goes where `non_accumulating` says: a
    key of NON_ACCUMULATING), spreads."""
    if model not in MODELS:
        raise DeviceError(f"devices fit --model {model}: unknown model; allowed: {', '.join(MODELS)}")
    if non_accumulating not in NON_ACCUMULATING:
        raise DeviceError(f"devices fit --non-accumulating {non_accumulating}: allowed: {', '.join(NON_ACCUMULATING)}")
    started = time.perf_counter()
    lay = layout(meas)
    if model == "piecewise":
        params, stderr, evaluations = _piecewise(meas), {}, 1
    else:
        params, stderr, evaluations = _minimise(model, meas, lay)
    device = device_class(MODELS[model])(**params)
    response = simulate(fit_config(device), lay)
    rmse = float(np.sqrt(np.mean((response - lay.target)[lay.mask] ** 2)))
    noise = split_noise(device, meas)
    params = {**params, **NO_SPREAD, "dw_min_std": noise.dw_min_std}
    if non_accumulating == "write" and "write_noise_std" in {f.name for f in dataclasses.fields(type(device))}:
        params["write_noise_std"] = noise.sigma_non_accumulating / params["dw_min"]
    if len(meas.devices) > 1:
        params["dw_min_dtod"] = device_spread(device, lay)
    return Fit(model, params, stderr, rmse, time.perf_counter() - started, evaluations, lay, response, noise,
               non_accumulating)


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
    on hat functions with a small second-difference penalty, of the smoothed states' steps (raw
    reads would put their noise into where each step is taken); a node the data do not reach takes
    the step of the nearest node they do."""
    lo, hi = meas.w_range
    nodes = np.linspace(lo, hi, PIECEWISE_NODES)
    steps = {}
    for sign in (1, -1):
        before, after, n = (np.concatenate(c) for c in zip(*[(t.smooth[:-1], t.smooth[1:], t.pulses[1:].astype(float))
                                                                for t in meas.traces]))
        keep = np.sign(n) == sign
        before, after, n = before[keep], after[keep], n[keep]
        at = np.clip((before + after) / 2, lo, hi)
        basis = np.clip(1 - np.abs(at[:, None] - nodes[None, :]) / (nodes[1] - nodes[0]), 0, None)
        smooth = np.diff(np.eye(PIECEWISE_NODES), 2, axis=0) * math.sqrt(len(at) * 0.1)
        target = sign * (after - before) / np.abs(n)
        solution = np.linalg.lstsq(np.vstack([basis, smooth]), np.r_[target, np.zeros(len(smooth))], rcond=None)[0]
        # a node the data do not reach keeps its nearest reached node's step (extrapolating the
        # penalty's line can reach 0 at a bound, and a device with a zero step there never leaves it)
        reached = np.flatnonzero(basis.sum(0) >= 1.0)
        if len(reached):
            nearest = reached[np.abs(np.arange(PIECEWISE_NODES)[:, None] - reached[None, :]).argmin(1)]
            solution = solution[nearest]
        steps[sign] = np.clip(solution, 0, None)
    dw_min = float(np.concatenate([steps[1], steps[-1]]).mean())
    if not dw_min > 0:
        raise DeviceError("devices fit --model piecewise: the measured steps average to zero")
    return {"dw_min": dw_min, "up_down": 0.0, "w_min": lo, "w_max": hi,
            "piecewise_up": [float(v) for v in steps[1] / dw_min], "piecewise_down": [float(v) for v in steps[-1] / dw_min]}


@dataclass
class NoiseSplit:
    """The reads' scatter around the trend, split by whether it accumulates from pulse to pulse.

    With the state x_t of a device after t pulses and the read w_t = x_t + e_t, the k-pulse-ahead
    residual r = (w_{t+k} - w_t) - (model's k-pulse step from the smoothed state at t) has

        E r^2 = 2 sigma_na^2 (1 - rho^k) + dw_min_std^2 q

    q: the model's k squared steps summed, each carried through the later steps' slope (the
    variance k steps of unit relative noise leave: a device whose step shrinks towards a bound
    forgets part of its earlier noise);
    sigma_na: noise that does not accumulate (read noise, or aihwkit's write noise, redrawn at each
    pulse), correlated by rho from one pulse to the next (rho = 0: independent reads; measured
    data can be correlated over a few pulses, and aihwkit's write noise cannot be: only its size
    is kept); dw_min_std: cycle-to-cycle noise relative to the step, as aihwkit draws it
    (accumulates). What of the trend the model misses grows with k as well and is counted as
    accumulating noise: dw_min_std is an upper bound for a model that misses the trend (a term
    c k^2 for it was tried and traded off against dw_min_std on aihwkit's own traces).
    Non-negative least squares over all pairs with k <= NOISE_LAGS for each rho of a grid, the
    best rho kept; 95 % intervals from a block bootstrap over the starting reads (blocks of
    NOISE_LAGS reads, 200 draws). Pairs whose model path meets a bound (a step of about 0) within
    MARGIN pulses after their second read are left out: a hard bound clips the noise."""

    dw_min_std: float
    sigma_non_accumulating: float  # weight units
    dw_min_std_ci: tuple[float, float] | None
    sigma_non_accumulating_ci: tuple[float, float] | None
    pairs: int
    lags: np.ndarray  # k of the table below
    var_k: np.ndarray  # mean r^2 per k
    q_k: np.ndarray  # mean q per k
    rho: float  # the non-accumulating noise's correlation from one pulse to the next

    def record(self, params: dict, non_accumulating: str) -> dict:
        """The split as a device file's `fit.noise` entry (params: the fitted device's)."""
        dw_min = params["dw_min"]
        ci = lambda v: None if v is None else [float(v[0]), float(v[1])]  # noqa: E731
        return {"method": "regression of k-pulse-ahead residuals: E r^2 = 2 sigma_na^2 (1 - rho^k) + dw_min_std^2 q",
                "pairs": self.pairs, "lags": [int(self.lags.min()), int(self.lags.max())] if len(self.lags) else [],
                "accumulating": {"dw_min_std": self.dw_min_std, "ci95": ci(self.dw_min_std_ci), "to": "dw_min_std"},
                "non_accumulating": {"sigma_weight_units": self.sigma_non_accumulating,
                                     "in_dw_min": self.sigma_non_accumulating / dw_min,
                                     "ci95": ci(self.sigma_non_accumulating_ci),
                                     "to": "write_noise_std" if "write_noise_std" in params else "none (read noise)"
                                           if non_accumulating == "read" else "none (this model has no write noise)",
                                     "why": NON_ACCUMULATING[non_accumulating]},
                "rho": self.rho}


def step_table(device, w_range: tuple[float, float], points: int = 513):
    """(grid, up step, down step): the noise-free change of one pulse up / down from each grid state."""
    lo, hi = min(w_range[0], device.w_min), max(w_range[1], device.w_max)
    grid = np.linspace(lo, hi, points)
    P = np.zeros((2, 2 * points), np.float32)
    P[0, :points], P[0, points:] = 1, -1
    R = np.zeros((2, 2 * points))
    R[0] = np.r_[grid, grid]
    after = simulate(fit_config(device), Layout(P, R, np.zeros_like(P, bool), np.zeros(2 * points, int), []))[1]
    return grid, after[:points] - grid, after[points:] - grid


def _pairs(device, meas: Measurements, lags: int):
    """Per pair of reads in one run at most `lags` pulses apart: (start row block, k, q, r). All
    runs at once: the model's path from every smoothed state (lags + MARGIN pulses of the run's
    direction), then the pairs lag by lag."""
    grid, up, down = step_table(device, meas.w_range)
    # one table for both directions: a falling run's states are looked up shifted past the rising ones
    shift = grid[-1] - grid[0] + 1.0
    table_x, table_step = np.r_[grid, grid + shift], np.r_[up, down]
    table_slope = np.r_[np.gradient(up, grid), np.gradient(down, grid)]
    every = [(t, first, last) for t in meas.traces for first, last in runs(t.pulses)]
    reads = sum(last - first + 2 for _, first, last in every)
    every = every[::max(1, math.ceil(reads / NOISE_READS))]  # long data: evenly spaced runs suffice
    parts, block = [], 0
    for t, first, last in every:
        n = last - first + 2
        parts.append((t.w[first - 1:last + 1], t.smooth[first - 1:last + 1],
                      np.r_[0, np.cumsum(np.abs(t.pulses[first:last + 1]))], np.full(n, len(parts)),
                      np.full(n, np.sign(t.pulses[first])), block + np.arange(n) // lags))
        block += n // lags + 1
    if not parts:
        return (np.zeros(0, int),) + (np.zeros(0),) * 3
    w, s, pos, run_of, sign, blocks = (np.concatenate(c) for c in zip(*parts))
    offset = np.where(sign > 0, 0.0, shift)
    steps = lags + MARGIN
    path, q = np.empty((steps + 1, len(s))), np.zeros((steps + 1, len(s)))
    free = np.ones((steps + 1, len(s)), bool)  # the path has not met a bound (a step of ~0) yet
    path[0] = s
    for j in range(steps):
        # a step's noise is carried on through the later steps' slope: q_{j+1} = J_j^2 q_j + step_j^2,
        # J = 1 + d step / dw, so a device that forgets its state, soft bounds, forgets its noise too
        at = np.clip(path[j], grid[0], grid[-1]) + offset
        d, J = np.interp(at, table_x, table_step), 1 + np.interp(at, table_x, table_slope)
        path[j + 1], q[j + 1] = path[j] + d, J * J * q[j] + d * d
        free[j + 1] = free[j] & (np.abs(d) > ACTIVE * device.dw_min)
    out = []
    for m in range(1, lags + 1):
        a = np.arange(len(s) - m)
        k = pos[a + m] - pos[a]
        keep = (run_of[a + m] == run_of[a]) & (k <= lags)
        i, kk = a[keep], k[keep]
        moving = free[kk + MARGIN, i]  # near a hard bound the device's noise is clipped: such pairs say little
        i, kk = i[moving], kk[moving]
        if len(i):
            out.append((blocks[i], kk, q[kk, i], (w[i + m] - w[i]) - (path[kk, i] - s[i])))
    if not out:
        return (np.zeros(0, int),) + (np.zeros(0),) * 3
    return tuple(np.concatenate(c) for c in zip(*out))


RHO_GRID = np.r_[0.0, np.linspace(0.05, 0.6, 12)]  # the non-accumulating noise's pulse-to-pulse correlation


def _regress(stats: dict, weights: np.ndarray, lag_values: np.ndarray):
    """(sigma_na, rho, dw_min_std) minimising the squared error of
    E r^2 = 2 sigma_na^2 (1 - rho^k) + dw_min_std^2 q over RHO_GRID, both coefficients >= 0 (the
    2 x 2 non-negative least squares in closed form, every rho at once), from per-(block, k) sums
    weighted per block."""
    n, sq, sqq, sy, sqy = (weights @ stats[key] for key in ("n", "q", "qq", "y", "qy"))
    f = 1 - RHO_GRID[:, None] ** lag_values[None, :]  # (rho, k)
    a11, a12, a22 = (n * f * f).sum(1), (sq * f).sum(1), np.full(len(RHO_GRID), sqq.sum())
    b1, b2 = (sy * f).sum(1), np.full(len(RHO_GRID), sqy.sum())
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        both = np.stack([(a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det])
        first, second = np.maximum(b1 / a11, 0), np.maximum(b2 / a22, 0)
    # the squared error less y'y, of coefficients (x1, x2)
    sse = lambda x1, x2: -2 * (x1 * b1 + x2 * b2) + x1 * x1 * a11 + 2 * x1 * x2 * a12 + x2 * x2 * a22  # noqa: E731
    zero = np.zeros_like(first)
    candidates = [(np.nan_to_num(first), zero), (zero, np.nan_to_num(second))]
    inside = (det > 0) & (both >= 0).all(0)
    candidates.append((np.where(inside, both[0], 0.0), np.where(inside, both[1], 0.0)))
    errors = np.stack([np.where(inside | (k < 2), sse(*c), np.inf) for k, c in enumerate(candidates)])
    pick = errors.argmin(0)
    x1 = np.choose(pick, [c[0] for c in candidates])
    x2 = np.choose(pick, [c[1] for c in candidates])
    best = int(np.argmin(errors.min(0)))
    return math.sqrt(x1[best] / 2), float(RHO_GRID[best]), math.sqrt(x2[best])


def split_noise(device, meas: Measurements, lags: int = NOISE_LAGS, draws: int = 200, seed: int = 0) -> NoiseSplit:
    """The accumulating (dw_min_std) and the non-accumulating noise of the reads around the fitted
    `device`'s trend (NoiseSplit's docstring says how)."""
    blocks, k, q, r = _pairs(device, meas, lags)
    if len(r) < 30:
        return NoiseSplit(0.0, 0.0, None, None, len(r), np.zeros(0), np.zeros(0), np.zeros(0), 0.0)
    lag_values, k_index = np.unique(k, return_inverse=True)
    nb, nk = int(blocks.max()) + 1, len(lag_values)
    cell = blocks * nk + k_index
    y = r * r
    stats = {key: np.bincount(cell, v, nb * nk).reshape(nb, nk)
             for key, v in (("n", None), ("q", q), ("qq", q * q), ("y", y), ("qy", q * y))}
    sigma, rho, std = _regress(stats, np.ones(nb), lag_values)
    rng = np.random.default_rng(seed)
    boot = np.array([_regress(stats, np.bincount(rng.integers(0, nb, nb), minlength=nb).astype(float), lag_values)
                     for _ in range(draws)]) if nb >= 5 else None
    ci = (lambda col: tuple(float(v) for v in np.percentile(boot[:, col], [2.5, 97.5]))) if boot is not None else (lambda col: None)
    count = stats["n"].sum(0)
    return NoiseSplit(std, sigma, ci(2), ci(0), len(r), lag_values, stats["y"].sum(0) / count, stats["q"].sum(0) / count,
                      rho)


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
                "noise": result.noise.record(result.params, result.non_accumulating),
                "dw_min_dtod": "relative spread of dw_min refitted per device" if len(meas.devices) > 1
                               else "not measured (one device): 0"},
    }


def plot_fit(result: Fit, meas: Measurements, path: Path) -> None:
    """Left: measured reads (dots, up and down rows coloured apart), the fitted trend (line,
    restarted from the smoothed state at every segment, as fitted) with the band of the noise
    that does not accumulate (+-sigma_na, grey) and, around it, the band the accumulated
    cycle-to-cycle noise adds within a segment; in conductance, against pulse number. Right: the
    variance of the k-pulse-ahead residuals against k with its fitted split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lay, noise = result.layout, result.noise
    to_g = meas.to_conductance
    g_per_w = (meas.g_range[1] - meas.g_range[0]) / (meas.w_range[1] - meas.w_range[0])
    fig, (ax, ax_var) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    offset, positions = 0, {}
    for index, trace in enumerate(meas.traces):
        positions[index] = offset + np.concatenate([[0], np.cumsum(np.maximum(np.abs(trace.pulses[1:]), 1))])
        offset = positions[index][-1] + 1
    sigma, std = noise.sigma_non_accumulating, noise.dw_min_std
    for j, (index, first, rows) in enumerate(lay.where):
        n = int(lay.mask[:, j].nonzero()[0].max()) + 1
        x, trend = positions[index][first] + np.arange(n), result.response[:n, j]
        steps = np.diff(trend, prepend=trend[0])
        accumulated = np.sqrt(sigma**2 + std**2 * np.cumsum(steps**2))
        ax.fill_between(x, to_g(trend - accumulated), to_g(trend + accumulated), color="tab:orange", alpha=0.25, lw=0,
                        label="+ accumulated (dw_min_std)" if j == 0 else None)
        ax.fill_between(x, to_g(trend - sigma), to_g(trend + sigma), color="0.6", alpha=0.5, lw=0,
                        label="not accumulating (sigma_na)" if j == 0 else None)
        ax.plot(x, to_g(trend), color="black", lw=0.8, label="fitted trend" if j == 0 else None)
    for index, trace in enumerate(meas.traces):
        x, g = positions[index], to_g(trace.w)
        for sign, colour, label in ((1, "tab:blue", "measured, up"), (-1, "tab:red", "measured, down")):
            sel = np.sign(trace.pulses) == sign
            sel[0] = False
            ax.scatter(x[sel], g[sel], s=3, color=colour, label=label if index == 0 else None, zorder=3)
    ax.set_xlabel("pulse number")
    ax.set_ylabel("conductance")
    ax.set_title(f"{MODELS[result.model]}: RMSE {result.rmse / (meas.w_range[1] - meas.w_range[0]):.2%} of the range")
    ax.legend(loc="best", fontsize=7)
    if len(noise.lags):
        k = noise.lags
        ax_var.plot(k, noise.var_k * g_per_w**2, "o", ms=3, color="black", label="measured E r^2")
        ax_var.plot(k, 2 * sigma**2 * (1 - noise.rho**k) * g_per_w**2, color="0.4",
                    label=f"2 sigma_na^2 (1 - rho^k), sigma_na {sigma * g_per_w:.3g}, rho {noise.rho:.2f}")
        ax_var.plot(k, (2 * sigma**2 * (1 - noise.rho**k) + std**2 * noise.q_k) * g_per_w**2, color="tab:orange",
                    label=f"+ dw_min_std^2 q (accumulating), dw_min_std {std:.3g}")
        ax_var.set_xlabel("k (pulses ahead)")
        ax_var.set_ylabel("residual variance (conductance^2)")
        ax_var.set_title("noise that accumulates and noise that does not")
        ax_var.legend(loc="best", fontsize=7)
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
