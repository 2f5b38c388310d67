"""One clean shutdown per command: what Ctrl-C and SIGTERM do on the command line.

The first SIGINT or SIGTERM raises KeyboardInterrupt where the program is, once; the code there
(a run's trainer, a sweep, a comparison) writes what it keeps and says so. Signals that follow
within GRACE_S seconds, a terminal's Ctrl-C to the process group one millisecond after a
scheduler's SIGTERM, or a second Ctrl-C typed while results are being written, are ignored: they
cannot break the shutdown the first one started. A signal later than that ends the process at
once (a shutdown that hangs can still be stopped), and signals during Python's own exit are
ignored. The exit code is 128 + the first signal's number (two that come while Python is inside
one C call, a matrix product or an import, are handled in the order of their numbers). (A signal in the first few
milliseconds, before Python has loaded this module, has its default effect: the process ends
with nothing written.)

A library may turn the KeyboardInterrupt into an error of its own (torch's and aihwkit's imports
raise RuntimeError when interrupted); `interrupted(err)` tells such an error from a real one.

The handlers are installed by the command line only (`install`), as its first step: a program
that imports hilt keeps its own.
"""

from __future__ import annotations

import atexit
import os
import signal
import time

GRACE_S = 10.0  # later signals are ignored for this long after the first

_first: list = []  # [(signum, monotonic time)] once a signal has come


def _handle(signum, frame):
    if _first:
        if time.monotonic() - _first[0][1] > GRACE_S:
            os._exit(128 + _first[0][0])
        return
    _first.append((signum, time.monotonic()))
    raise KeyboardInterrupt


def _ignore_at_exit() -> None:
    # Python puts the default handlers back while it shuts down: a signal then would kill the
    # process and replace the exit code it has already chosen.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def install() -> None:
    """Route SIGINT and SIGTERM through one shutdown. SIGINT is set explicitly: a process started in
    the background by a non-interactive shell inherits it ignored, and `kill -INT` would do nothing."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)
    atexit.register(_ignore_at_exit)


def received() -> int | None:
    """The first signal's number, or None (no signal, or the handlers are not installed)."""
    return _first[0][0] if _first else None


def exit_code() -> int:
    """128 + the signal that stopped the command (Ctrl-C without our handler: SIGINT)."""
    return 128 + (received() or signal.SIGINT)


def interrupted(err: BaseException) -> bool:
    """True when `err` is, or was raised while handling, a KeyboardInterrupt, or a signal has come:
    an error that is only the interrupt's echo in some library."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return received() is not None
