"""The ground floor: the errors every floor raises, and the memory check.

HiltError is bad user input (the CLI prints it as one line and exits 2); DeviceError names a bad
device or --set value; DivergenceError is a run whose numbers blew up (its status is diverged).
`check_memory` turns a size the machine cannot hold into a HiltError before allocating it.
"""

from __future__ import annotations

import os


class HiltError(Exception):
    """A user mistake (unknown name, bad parameter, missing files, divergence)."""


class DeviceError(HiltError):
    """Unknown device preset or a bad --set override."""


class DivergenceError(HiltError):
    """Activations, updates, weights or the loss of a run are not finite (or the loss kept growing)."""


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(what: str, nbytes: float) -> None:
    """HiltError naming the estimate when `what` would need more memory than is available."""
    have = available_memory()
    if nbytes > have:
        raise HiltError(f"{what} would need about {_gib(nbytes)} of memory; this machine has {_gib(have)} available")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB" if nbytes < 2**70 else f"2^{int(nbytes).bit_length() - 1} bytes"
