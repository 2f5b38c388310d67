"""What the hardware is made of: device presets -> aihwkit RPU configs, friendly overrides."""

from hilt.errors import DeviceError, HiltError
from hilt.devices.presets import PARAMS, PRESETS, DeviceSpec, parse_device

__all__ = ["DeviceError", "HiltError", "PARAMS", "PRESETS", "DeviceSpec", "parse_device"]
