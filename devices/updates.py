"""Analog update algorithms (`--update`; docs: devices.md): how a tile turns a rule's (x, d) rows into
device changes. An axis of its own: any pulsed preset with any algorithm, for every rule.

- `sgd`: the preset's own stochastic pulsed update (aihwkit's default). Every row of a step is its
  own pulse train: a batch of B samples is B trains, a convolution's B x positions rows as many.
- `summed`: hilt's batch-accumulated update. The crossbar sums G = sum_rows d x^T (plus the bias
  column) digitally and pulses it once per step, one pulse train per input column (x = e_i,
  d = G[:, i]) or per output (x = G[j, :], d = e_j), whichever is fewer. It assumes an out x in (+1) digital accumulator next to every tile and costs
  rows x out x in MACs per step there; the tile then sees min(out, in + 1) pulse trains instead of rows.
  On an ideal device it equals exact SGD.
- `mp`, `tt`, `ttv2`, `c-ttv2`, `agad`: aihwkit's own compounds, built with aihwkit's
  `build_config` around the preset's device, forward/backward IO and update parameters (mixed
  precision, Tiki-Taka v1/v2, chopped TTv2, AGAD). Where aihwkit 1.1 ships a tuned preset for the
  (algorithm, device) pair, e.g. TTv2ReRamESPreset, its compound settings are the defaults (so
  `rram --update ttv2` is that preset exactly); elsewhere build_config's.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from hilt.errors import DeviceError
from hilt.devices.params import Param, leaf_devices


@dataclass(frozen=True)
class Update:
    """One update algorithm and the facts the rest of hilt asks it (the crossbar's counters too)."""

    name: str
    aihwkit: str | None  # build_config's algorithm name; None: not an aihwkit compound
    tuned_prefix: str | None  # prefix of aihwkit's tuned presets, e.g. TTv2 in TTv2ReRamESPreset
    doc: str
    accumulator: bool = False  # a digital out x in accumulator beside every tile (its MACs are counted)
    fast_device: bool = False  # Tiki-Taka family: rows pulse a fast device A, transfers read its columns
    rows_pulse_device: bool = True  # a step's rows reach a device as pulse trains (mp: its accumulator instead)
    pulses_modelled: bool = True  # the expected pulses of those trains are modelled (analog/costs.py)

    @property
    def compound(self) -> bool:
        """An aihwkit compound: every tile transfers between its devices on its own."""
        return self.aihwkit is not None

    def counting(self, cfg) -> dict:
        """What counting an update needs from a tile's rpu config `cfg` (analog/costs.py, analog_crossbar):
        the transfer period and columns read per transfer of a compound, and the expected-pulse model's
        parameters (None where the pulses are not modelled: mp, whose device is written from its
        digital accumulator, and agad, whose transfers move its fast device too, so the device could
        not confirm a model)."""
        device, up = cfg.device, cfg.update
        model = {"compound": self.compound, "accumulator": self.accumulator, "rows_pulse_device": self.rows_pulse_device}
        if self.compound:
            model["per_rows"] = self.rows_pulse_device and not getattr(device, "units_in_mbatch", True)
            model["transfer_every"] = float(getattr(device, "transfer_every", 1) or 1)
            model["reads_per_transfer"] = int(getattr(device, "n_reads_per_transfer", 0) or 0) if self.fast_device else 0
        model["pulse_model"] = None
        if up.pulse_type.name != "NONE" and self.pulses_modelled:
            fast_lr = float(getattr(device, "fast_lr", 0.0)) if self.fast_device else 0.0
            auto = getattr(device, "auto_scale", False) and fast_lr > 0
            model["pulse_model"] = dict(dw_min=leaf_devices(device)[0].dw_min, desired_bl=up.desired_bl,
                                        management=up.update_management, bl_management=up.update_bl_management,
                                        fast_lr=fast_lr, auto_momentum=float(device.auto_momentum) if auto else None)
        return model


UPDATES: dict[str, Update] = {u.name: u for u in [
    Update("sgd", None, None, "the preset's own per-row stochastic pulse trains (aihwkit default)"),
    Update("summed", None, None, "hilt: the step's gradient summed digitally (out x in buffer per tile), "
                                 "pulsed once per step, by columns or by outputs", accumulator=True),
    Update("mp", "mp", "MixedPrecision", "aihwkit mixed precision: digital accumulator, device pulsed above a "
                                         "threshold (Nandakumar 2020)",
           accumulator=True, rows_pulse_device=False, pulses_modelled=False),
    Update("tt", "tt", "TikiTaka", "aihwkit Tiki-Taka v1: fast device A, slow device C, transfers (Gokmen 2020)",
           fast_device=True),
    Update("ttv2", "ttv2", "TTv2", "aihwkit Tiki-Taka v2: A, a digital buffer H, then C (Gokmen 2021)", fast_device=True),
    Update("c-ttv2", "c-ttv2", "ChoppedTTv2", "aihwkit chopped TTv2 (Rasch 2023)", fast_device=True),
    Update("agad", "agad", "AGAD", "aihwkit AGAD: chopped TTv2 with a dynamic reference (Rasch 2023)",
           fast_device=True, pulses_modelled=False),
]}
DEFAULT_UPDATE = "sgd"
COMPOUNDS = tuple(name for name, u in UPDATES.items() if u.compound)
TRANSFERS = tuple(name for name, u in UPDATES.items() if u.fast_device)

# hilt preset -> the device name of aihwkit's tuned compound presets
TUNED_DEVICE = {"rram": "ReRamES", "rram-sb": "ReRamSB", "ecram": "EcRam", "ecram-mo": "EcRamMO",
                "capacitor": "Capacitor", "idealized": "Idealized", "pcm": "PCM"}


def _compound(field: str, convert=lambda v: v):
    def apply(cfg, value):
        setattr(cfg.device, field, convert(value))

    return apply


UPDATE_PARAMS: list[Param] = [
    Param("transfer_every", int, 1, 100_000, "steps (mp: updates) between transfers to the slow/analog device",
          _compound("transfer_every"), ("mp", *TRANSFERS)),
    Param("units_in_mbatch", int, 0, 1, "transfer_every counts mini-batches (1) or rows (0)",
          _compound("units_in_mbatch", bool), TRANSFERS),
    Param("n_reads_per_transfer", int, 1, 4096, "columns read and transferred per transfer",
          _compound("n_reads_per_transfer"), TRANSFERS),
    Param("fast_lr", float, 0.0, 100.0, "learning rate of the fast device A", _compound("fast_lr"), TRANSFERS),
    Param("transfer_lr", float, 0.0, 100.0, "learning rate of a transfer", _compound("transfer_lr"),
          ("mp", *TRANSFERS)),
    Param("gamma", float, 0.0, 1.0, "weight of the fast device in the read weight (0: the slow device only)",
          _compound("gamma"), TRANSFERS),
    Param("in_chop_prob", float, 0.0, 1.0, "probability of flipping an input's chopper sign per update",
          _compound("in_chop_prob"), ("c-ttv2", "agad")),
    Param("auto_granularity", float, 0.0, 1e6, "updates per transfer period that set the buffer threshold (0: off)",
          _compound("auto_granularity"), ("ttv2", "c-ttv2", "agad")),
    Param("tail_weightening", float, 0.0, 1000.0, "AGAD: weight of the recent updates in the dynamic reference",
          _compound("tail_weightening"), ("agad",)),
    Param("granularity", float, 0.0, 1.0, "mp: accumulator threshold in weight units (0: the device's dw_min)",
          _compound("granularity"), ("mp",)),
    Param("n_rows_per_transfer", int, -1, 100_000, "mp: accumulator rows transferred per update (-1: all)",
          _compound("n_rows_per_transfer"), ("mp",)),
]


def check_update(update: str, preset: str, pulsed: bool) -> None:
    """DeviceError unless `update` is an algorithm that preset `preset` can run (pulsed: whether it
    updates by pulses)."""
    if update not in UPDATES:
        raise DeviceError(f"--update {update}: unknown update algorithm; allowed: {', '.join(UPDATES)}")
    if preset == "exact" and update != DEFAULT_UPDATE:
        raise DeviceError(f"--update {update}: device 'exact' is the float path with a digital optimizer; "
                          "update algorithms are for analog presets")
    if update in COMPOUNDS and not pulsed:
        raise DeviceError(f"--update {update}: device {preset!r} updates without pulses, so there is no device for "
                          f"{update} to wrap; allowed there: sgd, summed")


def tuned_preset(update: str, preset: str):
    """aihwkit's tuned config for (algorithm, device), e.g. TTv2ReRamESPreset(); None if it has none."""
    from aihwkit.simulator import presets

    name = f"{UPDATES[update].tuned_prefix}{TUNED_DEVICE.get(preset)}Preset"
    return getattr(presets, name)() if preset in TUNED_DEVICE and hasattr(presets, name) else None


def compound_config(update: str, preset: str, base):
    """The rpu config of compound `update` around preset `preset`'s config `base` (a single device
    or a unit cell, with its IO and update parameters), aihwkit's tuned settings where it has them."""
    from aihwkit.simulator.configs.helpers import build_config

    cfg = build_config(UPDATES[update].aihwkit, lambda **_: copy.deepcopy(base.device),
                       io_parameters=base.forward, up_parameters=base.update)
    tuned = tuned_preset(update, preset)
    if tuned is not None:
        wrapped = ("unit_cell_devices", "device")
        for f in dataclasses.fields(cfg.device):
            if f.name not in wrapped:
                setattr(cfg.device, f.name, copy.deepcopy(getattr(tuned.device, f.name)))
        cfg.update = copy.deepcopy(tuned.update)
        # device settings the tuned preset changes for the compound (e.g. ReRAM-SB's subtract_symmetry_point)
        for ours, theirs in zip(leaf_devices(cfg.device), leaf_devices(tuned.device)):
            ours.__dict__.update(copy.deepcopy(theirs.__dict__))
    return cfg
