"""Named device presets -> aihwkit RPU configurations, and friendly `--set key=value` overrides.

A `DeviceSpec` is what the user asked for (preset name + validated overrides). `rpu_config()`
builds a fresh aihwkit config from it for every tile (aihwkit deep-copies configs into tiles and
ignores later edits, so configs are never shared or mutated after use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hilt.errors import DeviceError, HiltError
from hilt.keyvalue import parse_items
from hilt.devices.device_file import check_definition, definition_rpu_config, is_device_file, read_device_file
from hilt.devices.neurosim import NEUROSIM_DEVICES, neurosim_definition
from hilt.devices.params import Param, leaf_devices
from hilt.devices.updates import COMPOUNDS, DEFAULT_UPDATE, UPDATE_PARAMS, check_update, compound_config, tuned_preset

# name -> (aihwkit preset class name or None, one-line description)
PRESETS: dict[str, tuple[str | None, str]] = {
    "exact": (None, "float32 NumPy/CuPy arithmetic, digital optimizer (no aihwkit)"),
    "ideal": ("ideal", "aihwkit tile, ideal device, perfect IO, float update: must equal exact"),
    "rram": ("ReRamESPreset", "ReRAM, exponential steps (Gong 2018), write noise"),
    "rram-sb": ("ReRamSBPreset", "ReRAM, soft bounds with reference device"),
    "pcm": ("PCMPreset", "PCM pair, unidirectional steps with refresh"),
    "ecram": ("EcRamPreset", "ECRAM, linear steps (Tang 2018)"),
    "ecram-mo": ("EcRamMOPreset", "metal-oxide ECRAM, linear steps, small dw_min"),
    "capacitor": ("CapacitorPreset", "capacitor cell, linear steps with leakage (decay)"),
    "idealized": ("IdealizedPreset", "constant-step device with ~10k states"),
    "rram-mp": ("MixedPrecisionReRamESPreset", "rram --update mp: mixed-precision (digital) update accumulation"),
    "rram-ttv2": ("TTv2ReRamESPreset", "rram --update ttv2: Tiki-Taka v2 (two devices, transfer)"),
}
# Presets that are another preset with its update algorithm fixed (aihwkit's tuned presets above).
PRESET_UPDATES: dict[str, tuple[str, str]] = {"rram-mp": ("rram", "mp"), "rram-ttv2": ("rram", "ttv2")}


def _set_device(field_name: str):
    def apply(cfg, value):
        leaves = [d for d in leaf_devices(cfg.device) if hasattr(d, field_name)]
        if not leaves:
            raise DeviceError(f"--set {field_name}: this device has no pulsed device parameter {field_name}")
        for d in leaves:
            setattr(d, field_name, value)

    return apply


def _set_w_max(cfg, value):
    for d in leaf_devices(cfg.device):
        if not hasattr(d, "w_max"):
            raise DeviceError("--set w_max: this device has no bounded pulsed device")
        d.w_max = value
        if d.w_min < 0:  # unidirectional devices (PCM halves) keep w_min = 0
            d.w_min = -value


def _set_io_field(io, field_name: str, value) -> None:
    if io.is_perfect:  # a perfect read gets a clean, non-perfect IO with only this effect on
        io.is_perfect = False
        io.inp_res = io.out_res = -1.0
        io.out_noise = 0.0
        io.inp_noise = 0.0
        io.w_noise = 0.0
    setattr(io, field_name, value)


def _io(directions: tuple[str, ...], field_name: str, convert=lambda v: v):
    """Set one IO field of the given reads. A forward-read key also reaches the reads a Tiki-Taka
    compound makes to transfer (its device's transfer_forward): they are reads of the same array."""

    def apply(cfg, value):
        for direction in directions:
            _set_io_field(getattr(cfg, direction), field_name, convert(value))
        transfer = getattr(cfg.device, "transfer_forward", None)
        if "forward" in directions and transfer is not None:
            _set_io_field(transfer, field_name, convert(value))

    return apply


def bits_to_res(bits: int) -> float:
    """aihwkit's resolution of a k-bit converter: 1 / (2^k - 2); 0 bits: -1 (no quantisation)."""
    return -1.0 if bits == 0 else 1.0 / (2**bits - 2)


def _set_update_bl(cfg, value):
    if not hasattr(cfg, "update") or cfg.update.pulse_type.name == "NONE":
        raise DeviceError("--set update_bl: this device updates without pulses, so update_bl would be ignored")
    cfg.update.desired_bl = value


_BOTH = ("forward", "backward")
PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        Param("dw_min", float, 1e-7, 1.0, "mean weight step of one pulse", _set_device("dw_min")),
        Param("dw_min_dtod", float, 0.0, 10.0, "device-to-device spread of dw_min (relative)", _set_device("dw_min_dtod")),
        Param("dw_min_std", float, 0.0, 100.0, "cycle-to-cycle spread of a step (relative)", _set_device("dw_min_std")),
        Param("write_noise_std", float, 0.0, 1000.0, "noise of the visible weight, redrawn at each write (in dw_min)",
              _set_device("write_noise_std")),
        Param("up_down", float, -1.0, 1.0, "up/down step asymmetry", _set_device("up_down")),
        Param("w_max", float, 1e-3, 100.0, "device weight bound (w_min = -w_max)", _set_w_max),
        Param("dac_bits", int, 0, 24, "input DAC bits of both reads (0 = unquantised)", _io(_BOTH, "inp_res", bits_to_res)),
        Param("adc_bits", int, 0, 24, "output ADC bits of both reads (0 = unquantised)", _io(_BOTH, "out_res", bits_to_res)),
        Param("read_noise", float, 0.0, 10.0, "output read noise of both reads (normalised units)", _io(_BOTH, "out_noise")),
        Param("backward_read_noise", float, 0.0, 10.0, "output read noise of the transposed read only", _io(("backward",), "out_noise")),
        Param("update_bl", int, 1, 1000, "max pulse-train length of an update (desired_bl)", _set_update_bl),
        Param("weight_scaling_omega", float, 0.0, 10.0, "device weight that the largest initial |W| maps to (0 = no scaling)"),
        Param("tile_size", int, 4, 4096, "max rows/columns of one tile; larger matrices are split"),
        *UPDATE_PARAMS,
    ]
}
CROSSBAR_DEFAULTS = {"weight_scaling_omega": 0.3, "tile_size": 512}


@dataclass
class DeviceSpec:
    name: str = "exact"
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    update: str = DEFAULT_UPDATE  # the update algorithm (devices/updates.py), resolved by parse_device
    definition: dict | None = None  # a device file's or NeuroSim model's definition (devices/device_file.py)

    @property
    def is_exact(self) -> bool:
        """Whether this is the exact float path (no aihwkit tiles)."""
        return self.name == "exact"

    @property
    def base(self) -> str:
        """The preset whose device this is (rram for rram-mp: the update is not part of it)."""
        return PRESET_UPDATES.get(self.name, (self.name,))[0]

    @property
    def summed(self) -> bool:
        """Whether the crossbar accumulates the step's gradient and pulses it once per step (devices/updates.py)."""
        return self.update == "summed"

    @property
    def device_seed(self) -> int:
        """aihwkit's construction_seed: seed + 1 (aihwkit draws a fresh spread for 0). It is an
        unsigned 32-bit number; larger seeds get one derived from them (recorded in config.json)."""
        if self.seed + 1 < 2**32:
            return self.seed + 1
        import numpy as np

        return int(np.random.SeedSequence(self.seed).generate_state(1)[0]) or 1

    def crossbar_option(self, key: str):
        """A crossbar-level option (weight scaling, tile size, ...), overridden or its default."""
        return self.overrides.get(key, CROSSBAR_DEFAULTS[key])

    def rpu_config(self):
        """The aihwkit rpu config of this device: preset or definition, update algorithm, --set
        overrides."""
        cfg = definition_rpu_config(self.definition) if self.definition else base_rpu_config(self.base)
        if self.update in COMPOUNDS:
            cfg = compound_config(self.update, self.base, cfg)
        for key, value in self.overrides.items():
            if PARAMS[key].apply is not None:
                PARAMS[key].apply(cfg, value)
        from aihwkit.simulator.parameters import MappingParameter

        # hilt keeps the bias as an analog input column and does its own weight scaling/splitting.
        cfg.mapping = MappingParameter(digital_bias=False, weight_scaling_omega=0.0)
        # aihwkit draws a fresh random spread for seed 0, and a compound device (pcm's unit cell,
        # mixed precision, Tiki-Taka) seeds its inner devices from its own construction_seed.
        for d in [cfg.device, *leaf_devices(cfg.device)]:
            if hasattr(d, "construction_seed"):
                d.construction_seed = self.device_seed
        return cfg

    def describe(self) -> dict[str, Any]:
        """Effective friendly parameters (after overrides), for `hilt devices` and config.json."""
        if self.definition:
            out = {"preset": self.name, "aihwkit": self.definition["device"]["class"],
                   "definition": self.definition.get("name"), "description": self.definition.get("description", "")}
        else:
            out = {"preset": self.name, "aihwkit": PRESETS[self.name][0]}
        if self.is_exact:
            return out
        cfg = self.rpu_config()
        out["update"] = self.update
        out["config"] = type(cfg).__name__
        if self.update in COMPOUNDS:
            out["compound"] = type(cfg.device).__name__
            tuned = tuned_preset(self.update, self.base)
            out["compound_defaults"] = type(tuned).__name__ if tuned is not None else "aihwkit build_config"
            out["update_params"] = {p.name: getattr(cfg.device, p.name) for p in UPDATE_PARAMS if self.update in p.updates}
        leaves = leaf_devices(cfg.device)
        out["devices"] = [type(d).__name__ for d in leaves]
        leaf = leaves[0]
        for key in ("dw_min", "dw_min_dtod", "dw_min_std", "write_noise_std", "up_down", "w_max", "w_min"):
            if hasattr(leaf, key):
                out[key] = getattr(leaf, key)
        for direction in _BOTH:
            io = getattr(cfg, direction, None)
            if io is None:
                continue
            out[f"{direction}_io"] = "perfect" if io.is_perfect else {
                "dac_bits": res_to_bits(io.inp_res),
                "adc_bits": res_to_bits(io.out_res),
                "read_noise": io.out_noise,
            }
        if hasattr(cfg, "update") and hasattr(cfg.update, "desired_bl"):
            out["update_bl"] = cfg.update.desired_bl
            out["pulse_type"] = cfg.update.pulse_type.name
        for key in CROSSBAR_DEFAULTS:
            out[key] = self.crossbar_option(key)
        return out


def res_to_bits(res: float):
    """The bits of a converter of aihwkit resolution `res` (the inverse of bits_to_res; 0: unquantised)."""
    if res <= 0:
        return 0
    if res >= 1:  # given as a number of steps
        return round(math.log2(res + 2), 2)
    return round(math.log2(1 / res + 2), 2)


def base_rpu_config(name: str):
    """The aihwkit rpu config of a preset by name, before the update algorithm and overrides."""
    from aihwkit.simulator import presets
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.configs.devices import IdealDevice
    from aihwkit.simulator.parameters import IOParameters, PulseType, UpdateParameters

    if name == "ideal":
        return SingleRPUConfig(
            device=IdealDevice(),
            forward=IOParameters(is_perfect=True),
            backward=IOParameters(is_perfect=True),
            update=UpdateParameters(pulse_type=PulseType.NONE),
        )
    return getattr(presets, PRESETS[name][0])()


def resolve_update(name: str, update: str | None) -> str:
    """The update algorithm of preset `name` run with `--update update` (None: not given)."""
    base, own = PRESET_UPDATES.get(name, (name, None))
    if own is not None and update not in (None, own):
        raise DeviceError(f"--device {name} is {base} with --update {own}; for --update {update} use "
                          f"--device {base} --update {update}")
    update = own or update or DEFAULT_UPDATE
    check_update(update, name, pulsed=base not in ("exact", "ideal"))
    return update


DEVICE_CHOICES = f"{', '.join([*PRESETS, *NEUROSIM_DEVICES])}, a device file FILE.json (`hilt devices fit`) or neurosim:KEY=V,..."


def device_definition(name: str) -> dict | None:
    """The definition of a device that is not an aihwkit preset (None for a preset)."""
    if name in PRESETS:
        return None
    if name in NEUROSIM_DEVICES or name.startswith("neurosim:"):
        return neurosim_definition(name)
    if is_device_file(name):
        return read_device_file(name)
    raise DeviceError(f"unknown device {name!r}; allowed: {DEVICE_CHOICES}")


# a definition's device parameters that --set also sets: checked against the same ranges
DEFINITION_CHECKED = ("dw_min", "dw_min_dtod", "dw_min_std", "write_noise_std", "up_down")


def parse_device(name: str, sets: list[str] | None = None, seed: int = 0, update: str | None = None,
                 definition: dict | None = None) -> DeviceSpec:
    """Validate a device (a preset name, a NeuroSim device, a device file), `key=value` overrides and
    an update algorithm (None: the preset's own, sgd for all but rram-mp / rram-ttv2) into a
    DeviceSpec (DeviceError on bad input). `definition`: the device's recorded definition (from a
    run's config.json), used instead of reading the file again."""
    if definition is None:
        definition = device_definition(name)
    elif name in PRESETS:
        raise DeviceError(f"device {name!r} is a preset and has no definition")
    else:
        definition = check_definition(definition, f"--device {name}")
    if definition:  # a device file's or NeuroSim device's values go through --set's ranges
        params = definition["device"]["params"]
        for key in DEFINITION_CHECKED:
            if key in params:
                PARAMS[key].check(params[key], f"--device {name}")
        if not params.get("w_min", -1.0) < 0 < params.get("w_max", 1.0):
            raise DeviceError(f"--device {name}: w_min < 0 < w_max is needed (got w_min {params.get('w_min')}, "
                              f"w_max {params.get('w_max')})")
    update = resolve_update(name, update)
    overrides: dict[str, Any] = {}
    try:
        items = parse_items("--set", sets or [], expected=f"key=value; keys: {', '.join(PARAMS)}")
    except HiltError as err:
        raise DeviceError(str(err)) from None
    for key, text in items.items():
        if key not in PARAMS:
            raise DeviceError(f"--set: unknown key {key!r}; allowed: {', '.join(PARAMS)}")
        param = PARAMS[key]
        if param.updates and update not in param.updates:
            own = [p.name for p in UPDATE_PARAMS if update in p.updates]
            raise DeviceError(f"--set {key}: a parameter of --update {', '.join(param.updates)}, not of {update}"
                              + (f" (its keys: {', '.join(own)})" if own else ""))
        overrides[key] = param.parse(text)
    spec = DeviceSpec(name, overrides, seed, update, definition)
    if spec.is_exact and overrides:
        raise DeviceError(f"--set {', '.join(overrides)}: device 'exact' is the float path and takes no device parameters")
    if not spec.is_exact:
        spec.rpu_config()  # surfaces overrides that do not fit this preset (DeviceError)
        _try_tile(spec)
    return spec


def _try_tile(spec: DeviceSpec) -> None:
    """Read and update a 2 x 3 tile of the device once: a configuration that aihwkit's simulator
    refuses only when it first runs (e.g. pcm with write_noise_std > 0) is bad input before a run
    starts, not a crash in its first step. About 10 ms."""
    import torch
    from aihwkit.simulator.tiles import AnalogTile

    try:
        tile = AnalogTile(2, 3, spec.rpu_config(), bias=True)
        tile.set_learning_rate(0.01)
        x, d = torch.full((1, 3), 0.5), torch.full((1, 2), 0.5)
        tile.forward(x)
        tile.backward(d)
        tile.update(x, d)
        tile.post_update_step()
    except Exception as err:  # aihwkit's C++ simulator raises RuntimeError with its file and line
        typed = " ".join(f"--set {k}={v}" for k, v in spec.overrides.items())
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DeviceError(f"--device {spec.name}{' ' + typed if typed else ''}"
                          f"{' --update ' + spec.update if spec.update != DEFAULT_UPDATE else ''}: aihwkit's simulator refuses "
                          f"this device ({reason})") from None
