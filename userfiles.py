"""One reader for every file a user hands hilt (device files, cost tables, measurement CSVs, the
files of a run folder): it must be a regular file (a FIFO would hang, /dev/zero would fill the
memory), at most a size limit, UTF-8 text, and JSON at most MAX_DEPTH deep. Anything else is one
HiltError naming the file and what was expected; nothing is read past the check.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hilt.errors import HiltError

MAX_BYTES = 64 * 2**20  # JSON and small text files
MAX_TABLE_BYTES = 1024 * 2**20  # measurement tables (CSV)
MAX_DEPTH = 64  # nesting of JSON containers


def read_text(path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` (HiltError starting with `what`
    otherwise; FileNotFoundError is kept for the caller's own message)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise HiltError(f"{what}: cannot read it ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise HiltError(f"{what}: is a folder; expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise HiltError(f"{what}: not a regular file (a pipe, a device or a socket); expected a file")
    if info.st_size > max_bytes:
        raise HiltError(f"{what}: {info.st_size / 2**20:.0f} MiB, more than the {max_bytes / 2**20:.0f} MiB "
                        "a file of this kind may have")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise HiltError(f"{what}: cannot read it ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise HiltError(f"{what}: more than the {max_bytes / 2**20:.0f} MiB a file of this kind may have")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise HiltError(f"{what}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                        "save it as UTF-8") from None


def _depth(value) -> int:
    """The nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path, what: str, max_bytes: int = MAX_BYTES):
    """The parsed JSON of a file read by `read_text` (HiltError for invalid JSON, NaN or Infinity,
    or nesting deeper than MAX_DEPTH)."""
    text = read_text(path, what, max_bytes)

    def no_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise HiltError(f"{what}: nested deeper than {MAX_DEPTH} levels; not a file hilt writes") from None
    except json.JSONDecodeError as err:
        raise HiltError(f"{what}: not valid JSON ({err.msg}, line {err.lineno})") from None
    except ValueError as err:
        raise HiltError(f"{what}: not valid JSON ({err})") from None
    if _depth(value) > MAX_DEPTH:
        raise HiltError(f"{what}: nested deeper than {MAX_DEPTH} levels; not a file hilt writes")
    return value
