"""A run's TensorBoard event file (RUN_DIR/tensorboard/): `tensorboard --logdir results/` shows
every run's losses, accuracies and cost counts per epoch, and its settings as hparams, so the
hparams view compares a sweep's points.

Written with TensorBoard's own record writer and protos (no TensorFlow, no torch import), in the
calling thread (TensorBoard's EventFileWriter keeps a thread, which a Ctrl-C in the middle of a
flush leaves broken):
one scalar per metrics row and column (`train/loss`, `test/accuracy`, `train/energy_j`, ... at
step = epoch) after every epoch, and the settings with the final metrics when the run finishes.
A resumed run appends a new event file to the same folder; TensorBoard joins them by step.
`--no-tensorboard` (TrainConfig.tensorboard) writes none.
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import time
from pathlib import Path

FOLDER = "tensorboard"
NOT_SCALARS = ("epoch", "split")
_SERIAL = itertools.count()  # two logs opened in one second by one process get two files


class EventLog:
    """The event file of one run (opened on the first row, so a run that writes none has none)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._writer = None

    def _write(self, summary, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        if self._writer is None:
            self._open()
        self._writer.write(Event(wall_time=time.time(), step=step, summary=summary).SerializeToString())

    def _open(self) -> None:
        """A new event file named as TensorBoard's writers name theirs, opened with its version record."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_SERIAL)}"
        self._writer = RecordWriter(open(self.folder / name, "wb"))
        self._writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def rows(self, rows: list[dict]) -> None:
        """Scalars of metrics rows (one per split and epoch), written at once."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        for row in rows:
            values = [Summary.Value(tag=f"{row['split']}/{key}", simple_value=float(value))
                      for key, value in row.items()
                      if key not in NOT_SCALARS and isinstance(value, (int, float)) and math.isfinite(value)]
            if values:
                self._write(Summary(value=values), int(row["epoch"]))
        if self._writer is not None:
            self._writer.flush()

    def hparams(self, settings: dict, metrics: dict, step: int) -> None:
        """The run's settings (numbers, text and booleans; others as text) for the hparams view,
        with its final metrics as scalars of the same names."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import summary_v2

        plain = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in settings.items() if v is not None}
        self._write(summary_v2.hparams_pb(plain), step)
        values = [Summary.Value(tag=f"hparams/{k}", simple_value=float(v)) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        if values:
            self._write(Summary(value=values), step)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
