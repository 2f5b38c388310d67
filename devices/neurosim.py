"""NeuroSim-style devices: the conductance-vs-pulse model that many device papers report their
parameters in, as an aihwkit PiecewiseStepDevice (docs: your-own-device.md).

NeuroSim's model (MLP_NeuroSim V3.0, formula.cpp NonlinearWeight / Cell.cpp RealDevice::Write,
github.com/neurosim/MLP_NeuroSim_V3.0):

    G(P) = B (1 - exp(-P / A)) + G_min,   B = (G_max - G_min) / (1 - exp(-P_max / A)),

with P the pulse position, P_max the number of levels, and A = a(NL) P_max, where a(NL) is
NeuroSim's normalized-A table (getParamA; documents/Nonlinearity-NormA.htm) for the nonlinearity
label NL; LTP uses NL_LTP and LTD the same formula with NL_LTD (negative: a mirrored curve, so
depression steps are largest near G_max). The label is the curve's largest deviation from the
straight line, in units of NL_SCALE of the range: max_p [g(p) - p] = NL_SCALE |NL| with
g(p) = (1 - exp(-p/a)) / (1 - exp(-1/a)); this reproduces the table to 5 digits (tested).

A pulse from conductance G moves it by (B - (G - G_min)) (1 - exp(-1/A)) up (LTP) and by
(B - (G - G_min)) (1 - exp(1/A)) down (LTD): both are linear in G, so a piecewise-step table
with nodes across [G_min, G_max] reproduces G(P) exactly at every pulse.

Cycle-to-cycle variation: NeuroSim V3.0 adds sigma = c2c (G_max - G_min) to every pulse,
whatever the state. aihwkit's PiecewiseStepDevice draws its noise relative to the local step
(dw_min_std x step(w)), so no single dw_min_std matches at every state: hilt chooses the one
whose variance, summed over the pulses of a full sweep of the range (levels_ltp up from G_min,
levels_ltd down from G_max), equals NeuroSim's, levels x sigma^2. Per pulse it is then larger
than NeuroSim's where the step is large and smaller where it is small (tests/test_device_fitting.py
measures both). DNN+NeuroSim V2.1 (neurosim-v2's source) draws its c2c once per weight update,
not per pulse; hilt applies it per pulse, as V3.0 does, so an update of n pulses gets about
sqrt(n) times V2.1's noise.

NeuroSim's own code reads its A table at index (int)(|NL| x 100) - 1, which floors the
floating-point error of labels such as 0.29 x 100 = 28.999...: 53 of the 900 two-decimal labels
read the entry one below (A up to 0.9 % off). `normalized_a` is the closed form, which matches
the table's entries themselves within 2.3e-5; a label lands on its own entry here.
"""

from __future__ import annotations

import math

import numpy as np

from hilt.errors import DeviceError
from hilt.devices.device_file import FORMAT, NO_SPREAD

NL_SCALE = 0.0989949  # max deviation from linear per unit of NeuroSim's nonlinearity label
NL_MAX = 9.0  # the last label of NeuroSim's table
NODES = 33  # piecewise-step nodes across the weight range
W_RANGE = (-1.0, 1.0)  # G_min -> w_min, G_max -> w_max

# name -> (parameters, description with its source)
NEUROSIM_DEVICES: dict[str, tuple[dict[str, float], str]] = {
    "neurosim-agsi": (
        {"nl_ltp": 2.4, "nl_ltd": -4.88, "levels_ltp": 97, "levels_ltd": 100, "c2c": 0.035, "onoff": 12.5},
        "Ag:a-Si RRAM, NeuroSim's default device (MLP_NeuroSim V3.0 Cell.cpp RealDevice: NL 2.4/-4.88, "
        "97/100 levels, c2c 3.5 %, G 3.08-38.5 nS)"),
    "neurosim-v2": (
        {"nl_ltp": 1.75, "nl_ltd": 1.46, "levels_ltp": 32, "levels_ltd": 32, "c2c": 0.003, "onoff": 10.0},
        "DNN+NeuroSim V2.1's training device (values set in Training_pytorch/train.py after its argument "
        "parsing, not its argparse defaults: NL 1.75/1.46, 32 levels, c2c 0.3 %, on/off 10; V2.1 draws c2c "
        "once per update, hilt per pulse)"),
}
KEYS = {
    "nl_ltp": "LTP nonlinearity label (0: linear)",
    "nl_ltd": "LTD nonlinearity label (negative: mirrored curve, NeuroSim's convention)",
    "levels": "pulses from G_min to G_max (both directions)",
    "levels_ltp": "pulses from G_min to G_max",
    "levels_ltd": "pulses from G_max to G_min",
    "c2c": "cycle-to-cycle sigma per pulse, as a fraction of G_max - G_min",
    "onoff": "G_max / G_min (recorded; the weight model uses G - G_min, so it does not change training)",
}
HELP = ("neurosim:KEY=V,... builds NeuroSim's device model G(P) = B (1 - exp(-P/A)) + G_min "
        "(MLP_NeuroSim V3.0) as a piecewise-step device; keys: " + ", ".join(KEYS))


def normalized_a(nl: float) -> float:
    """NeuroSim's normalized A (A / P_max) of nonlinearity label nl, signed like nl (inf for 0)."""
    if nl == 0:
        return math.inf
    from scipy.optimize import brentq

    p = np.linspace(0.0, 1.0, 20001)

    def excess(log_a: float) -> float:
        a = math.exp(log_a)
        g = np.expm1(-p / a) / math.expm1(-1.0 / a)
        return float((g - p).max()) - NL_SCALE * abs(nl)

    if abs(nl) > NL_MAX:
        raise DeviceError(f"neurosim: nonlinearity {nl} is out of range; NeuroSim's table has 0 < |NL| <= {NL_MAX}")
    return math.copysign(math.exp(brentq(excess, math.log(1e-4), math.log(1e6), xtol=1e-12)), nl)


def conductance_after(g: np.ndarray, pulses: int, nl: float, levels: int) -> np.ndarray:
    """Normalized conductance (G - G_min) / (G_max - G_min) after `pulses` signed pulses from g,
    by NeuroSim's formula (no clipping, no noise)."""
    a = normalized_a(nl) * levels
    if math.isinf(a):
        return g + pulses / levels
    b = 1.0 / -math.expm1(-levels / a)
    position = -a * np.log1p(-g / b)
    return b * -np.expm1(-(position + pulses) / a)


def neurosim_parameters(text: str) -> dict[str, float]:
    """The NeuroSim parameters of `neurosim:k=v,...` or of a named NeuroSim device."""
    if text in NEUROSIM_DEVICES:
        return dict(NEUROSIM_DEVICES[text][0])
    body = text.split(":", 1)[1]
    out = dict(NEUROSIM_DEVICES["neurosim-agsi"][0])
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            raise DeviceError(f"--device {text}: expected neurosim:KEY=VALUE,...; keys: {', '.join(KEYS)}")
        try:
            number = float(value)
        except ValueError:
            raise DeviceError(f"--device {text}: {key}={value} is not a number") from None
        if not math.isfinite(number):
            raise DeviceError(f"--device {text}: {key}={value} is not a finite number")
        if key == "levels":
            out["levels_ltp"] = out["levels_ltd"] = number
        else:
            out[key] = number
    for key in ("levels_ltp", "levels_ltd"):
        if not (out[key] == int(out[key]) and 2 <= out[key] <= 100_000):
            raise DeviceError(f"--device {text}: {key} must be a whole number in [2, 100000]")
    for key in ("nl_ltp", "nl_ltd"):
        if not abs(out[key]) <= NL_MAX:
            raise DeviceError(f"--device {text}: {key} must be in [-{NL_MAX}, {NL_MAX}] (NeuroSim's table)")
        if out[key] != 0 and abs(out[key]) < 0.01:
            raise DeviceError(f"--device {text}: {key} = {out[key]:g}: a nonlinearity is 0 or at least 0.01 "
                              "(NeuroSim's table starts there)")
    if not 0 <= out["c2c"] <= 1:
        raise DeviceError(f"--device {text}: c2c must be in [0, 1] (a fraction of the conductance range)")
    if not out["onoff"] > 1:
        raise DeviceError(f"--device {text}: onoff must be > 1 (G_max / G_min)")
    return out


def sweep_steps(p: dict) -> np.ndarray:
    """The steps (weight units) of the pulses of a full sweep: levels_ltp up from G_min, then
    levels_ltd down from G_max (NeuroSim's curves, no noise)."""
    lo, hi = W_RANGE
    steps = []
    for pulse, nl, levels, start in ((1, p["nl_ltp"], int(p["levels_ltp"]), 0.0), (-1, p["nl_ltd"], int(p["levels_ltd"]), 1.0)):
        g = np.array([start])
        for _ in range(levels):
            after = conductance_after(g, pulse, nl, levels)
            steps.append(abs(float(after[0] - g[0])) * (hi - lo))
            g = after
    return np.array(steps)


def c2c_relative(p: dict) -> float:
    """aihwkit's dw_min_std (relative to the step) whose variance over a full sweep's pulses equals
    NeuroSim's additive c2c (G_max - G_min) on each of them."""
    steps = sweep_steps(p)
    sigma = p["c2c"] * (W_RANGE[1] - W_RANGE[0])
    return float(sigma * math.sqrt(len(steps) / np.sum(steps**2)))


def neurosim_definition(text: str) -> dict:
    """A device definition (devices/device_file.py) of NeuroSim's model with these parameters."""
    p = neurosim_parameters(text)
    lo, hi = W_RANGE
    g = np.linspace(0.0, 1.0, NODES)
    up = (conductance_after(g, 1, p["nl_ltp"], int(p["levels_ltp"])) - g) * (hi - lo)
    down = (g - conductance_after(g, -1, p["nl_ltd"], int(p["levels_ltd"]))) * (hi - lo)
    dw_min = float(np.concatenate([up, down]).mean())
    params = {**NO_SPREAD, "dw_min": dw_min, "up_down": 0.0, "w_min": lo, "w_max": hi,
              "piecewise_up": [float(v) for v in up / dw_min], "piecewise_down": [float(v) for v in down / dw_min],
              "dw_min_std": c2c_relative(p)}
    description = NEUROSIM_DEVICES[text][1] if text in NEUROSIM_DEVICES else "NeuroSim model " + text.split(":", 1)[1]
    return {"format": FORMAT, "name": text if text in NEUROSIM_DEVICES else "neurosim", "description": description,
            "device": {"class": "PiecewiseStepDevice", "params": params},
            "source": {"model": "neurosim", "parameters": p,
                       "reference": "MLP_NeuroSim V3.0 formula.cpp/Cell.cpp (github.com/neurosim/MLP_NeuroSim_V3.0)"}}
