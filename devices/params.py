"""What every `--set key=value` override is made of, and how to find the pulsed devices inside an
aihwkit device (single device, unit cell or update compound)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from hilt.errors import DeviceError


@dataclass(frozen=True)
class Param:
    """One friendly override: its type, closed range and how it maps onto an aihwkit config.
    `updates`: the update algorithms (--update) the key belongs to; empty: a key of every device."""

    name: str
    kind: type
    lo: float
    hi: float
    doc: str
    apply: Callable[[Any, Any], None] | None = None  # (rpu_config, value); None = crossbar-level
    updates: tuple[str, ...] = ()

    def parse(self, text: str):
        """The value of --set KEY=text, checked against the parameter's type and range (DeviceError
        otherwise)."""
        try:
            value = self.kind(text) if self.kind is float else int(text)
        except ValueError:
            raise DeviceError(f"--set {self.name}={text}: expected {self.kind.__name__} in [{self.lo}, {self.hi}]")
        if not (self.lo <= value <= self.hi) or (self.kind is float and not math.isfinite(value)):
            raise DeviceError(f"--set {self.name}={text}: out of range, allowed [{self.lo}, {self.hi}]")
        return value

    def check(self, value, what: str):
        """`value` of this parameter from elsewhere (a device file, a NeuroSim device), checked
        against the same range (DeviceError starting with `what`)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not self.lo <= value <= self.hi:
            raise DeviceError(f"{what}: {self.name} = {value!r} is out of range, allowed [{self.lo}, {self.hi}] "
                              f"(as --set {self.name})")
        return value


def leaf_devices(device) -> list:
    """The pulsed devices of a (possibly compound) aihwkit device, innermost first."""
    if hasattr(device, "unit_cell_devices"):
        return [leaf for d in device.unit_cell_devices for leaf in leaf_devices(d)]
    inner = getattr(device, "device", None)  # mixed precision wraps one device (or unit cell)
    if inner is not None and (hasattr(inner, "dw_min") or hasattr(inner, "unit_cell_devices")):
        return leaf_devices(inner)
    return [device]
