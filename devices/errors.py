"""The one exception type for bad user input; the CLI prints it as one line and exits 2."""


class HiltError(Exception):
    """A user mistake (unknown name, bad parameter, missing files, divergence)."""


class DeviceError(HiltError):
    """Unknown device preset or a bad --set override."""
