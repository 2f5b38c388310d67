"""Devices that are not presets: a device file (`--device mydevice.json`, written by `devices fit`)
or a NeuroSim model (`--device neurosim:...`, devices/neurosim.py), as one device definition:

    {"format": "hilt-device-1", "name": ..., "description": ...,
     "device": {"class": "SoftBoundsDevice", "params": {"dw_min": 0.01, ...}},
     "fit": {...}, "source": {...}}          # fit / source: how it was made (optional)

The device is one aihwkit pulsed device (one of MODELS) read and updated through aihwkit's
preset IO and update parameters (PresetIOParameters, PresetUpdateParameters: 7-bit DAC, 9-bit
ADC, output noise 0.1, update management, BL 31), like the presets. A run records the whole
definition in config.json, so it resumes without the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hilt.errors import DeviceError, HiltError
from hilt.userfiles import read_json

FORMAT = "hilt-device-1"
KEYS = ("format", "name", "description", "device", "fit", "source")
# --model of `devices fit` -> the aihwkit device class
MODELS: dict[str, str] = {
    "constant": "ConstantStepDevice",
    "linear": "LinearStepDevice",
    "softbounds": "SoftBoundsDevice",
    "exp": "ExpStepDevice",
    "pow": "PowStepDevice",
    "piecewise": "PiecewiseStepDevice",
}

# where `devices fit --non-accumulating` puts the reads' scatter that does not accumulate
NON_ACCUMULATING: dict[str, str] = {
    "write": "aihwkit's write_noise_std (redrawn at every pulse of the device, seen by every read until the next)",
    "read": "the instrument's read noise: recorded in the fit, left out of the device",
}

# spreads a definition does not measure are off (aihwkit's defaults would invent them)
NO_SPREAD = {"dw_min_dtod": 0.0, "up_down_dtod": 0.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0}


def is_device_file(name: str) -> bool:
    """Whether a --device names a device file (ends in .json)."""
    return name.endswith(".json")


def device_label(name: str) -> str:
    """A --device as it appears in run-folder names: a file by its stem, a NeuroSim model string by
    a short hash of it (neurosim-1a2b3c), a preset as itself."""
    if is_device_file(name):
        return Path(name).stem
    if name.startswith("neurosim:"):
        import hashlib

        return "neurosim-" + hashlib.sha1(name.encode()).hexdigest()[:6]
    return name


def device_class(class_name: str):
    """The aihwkit device class of a definition (DeviceError for one that MODELS lacks)."""
    from aihwkit.simulator.configs import devices

    if class_name not in MODELS.values():
        raise DeviceError(f"device class {class_name!r} is not supported; allowed: {', '.join(MODELS.values())}")
    return getattr(devices, class_name)


def check_definition(definition, what: str) -> dict:
    """A device definition, validated (DeviceError naming `what` and the problem otherwise)."""
    if not isinstance(definition, dict) or definition.get("format") != FORMAT:
        found = definition.get("format") if isinstance(definition, dict) else type(definition).__name__
        raise DeviceError(f"{what}: not a hilt device file (format {found!r}; expected {FORMAT!r}, "
                          "as `hilt devices fit` writes)")
    unknown = sorted(set(definition) - set(KEYS))
    if unknown:
        raise DeviceError(f"{what}: unknown keys {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
    device = definition.get("device")
    if not isinstance(device, dict) or set(device) != {"class", "params"} or not isinstance(device["params"], dict):
        raise DeviceError(f"{what}: 'device' must be {{\"class\": ..., \"params\": {{...}}}}")
    try:
        cls = device_class(device["class"])
    except DeviceError as err:
        raise DeviceError(f"{what}: {err}") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(device["params"]) - fields)
    if unknown:
        raise DeviceError(f"{what}: unknown {device['class']} parameters {', '.join(unknown)}")
    for key, value in device["params"].items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
                                 for v in values):
            raise DeviceError(f"{what}: parameter {key} = {value!r} is not a finite number")
    if not isinstance(definition.get("name", ""), str):
        raise DeviceError(f"{what}: 'name' must be a string")
    return definition


def read_device_file(path: str) -> dict:
    """A device file's definition, validated (DeviceError naming the file and the problem)."""
    what = f"--device {path}"
    try:
        definition = read_json(path, what)
    except FileNotFoundError:
        raise DeviceError(f"{what}: no such device file (write one with `hilt devices fit DATA.csv --out {path}`)") from None
    except HiltError as err:
        raise DeviceError(str(err)) from None
    definition = check_definition(definition, what)
    definition.setdefault("name", Path(path).stem)
    return definition


def build_device(definition: dict, **changes):
    """The aihwkit device of a definition (with `changes` applied on top)."""
    device = definition["device"]
    return device_class(device["class"])(**{**device["params"], **changes})


def single_rpu_config(device):
    """One aihwkit pulsed device with the presets' IO and update parameters."""
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.presets.utils import PresetIOParameters, PresetUpdateParameters

    return SingleRPUConfig(device=device, forward=PresetIOParameters(), backward=PresetIOParameters(),
                           update=PresetUpdateParameters())


def definition_rpu_config(definition: dict):
    """The aihwkit single-device rpu config of a definition (the presets' IO and update parameters)."""
    return single_rpu_config(build_device(definition))
