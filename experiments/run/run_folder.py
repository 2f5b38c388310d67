"""A run folder: the one place that knows its file names, how it is made, opened and locked, and
how its status is read and written. Used by train, sweep, compare, robustness, report and
rhm-pstar.

    config.json      every setting of the run (written once, when it is made)
    metrics.csv      one row per epoch and split (rewritten every epoch)
    summary.json     status and final metrics (rewritten every epoch and at the end)
    checkpoint.npz   what a resume needs (experiments/run/checkpoint.py); checkpoint-best.npz with --keep-best
    error.log        the traceback of a crashed run
    .lock, .writer.json   the one-writer lock (experiments/run/files.py: one_writer)

Statuses: RunStatus (running, finished, interrupted, diverged, crashed).
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import csv
from enum import StrEnum
from pathlib import Path

from hilt.errors import HiltError
from hilt.experiments.run import checkpoint
from hilt.experiments.run.files import new_run_dir, one_writer, read_json, write_csv, write_json, write_text

CONFIG, SUMMARY, METRICS, ERROR_LOG = "config.json", "summary.json", "metrics.csv", "error.log"
class RunStatus(StrEnum):
    """How a run stands (summary.json's status; equal to its text, so JSON reads back as it)."""

    RUNNING = "running"  # training, or killed while training (resume it)
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: resume it
    DIVERGED = "diverged"  # a loss or weight not finite, or the loss kept growing: not resumable
    CRASHED = "crashed"  # any other error: its line in summary.json, the traceback in error.log


def _number(text: str):
    """A metrics.csv cell as pandas reads it: int, float, None where blank, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None if text == "" else text


class RunFolder:
    """A run folder on disk: its files, its lock, its status."""

    def __init__(self, path: Path, what: str | None = None):
        self.path = Path(path)
        self.what = what or str(self.path)  # the folder as the user named it, for messages

    @classmethod
    def create(cls, root: Path, label: str) -> "RunFolder":
        """A new folder <root>/<time>-<label>[-N], made exclusively."""
        return cls(new_run_dir(Path(root), label))

    @classmethod
    def at(cls, path: Path) -> "RunFolder":
        """The folder at `path` (a sweep's point), made if needed."""
        Path(path).mkdir(parents=True, exist_ok=True)
        return cls(path)

    def lock(self):
        """Context manager: this process is the folder's one writer (HiltError naming the holder)."""
        return one_writer(self.path, self.what)

    def discard(self) -> None:
        """Remove a run folder this command made and that holds no checkpoint (a new run stopped
        before its first epoch was kept: nothing in it could be resumed)."""
        if not self.has_checkpoint():
            shutil.rmtree(self.path, ignore_errors=True)

    # reading

    def is_run(self) -> bool:
        """Whether the folder holds a run (a config.json)."""
        return (self.path / CONFIG).is_file()

    def config(self) -> dict:
        """config.json (HiltError when the folder is not a run)."""
        if not self.is_run():
            raise HiltError(f"{self.what}: not a run folder (no {CONFIG} there)")
        return read_json(self.path / CONFIG)

    def summary(self) -> dict:
        """summary.json, or {} before the first epoch."""
        path = self.path / SUMMARY
        return read_json(path) if path.is_file() else {}

    def metrics(self) -> list[dict]:
        """metrics.csv's rows ([] before the first epoch), numbers as numbers."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        with open(path, newline="") as fh:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    @property
    def status(self) -> str | None:
        """summary.json's status (None before the first epoch)."""
        return self.summary().get("status")

    def has_checkpoint(self) -> bool:
        """Whether the run has a checkpoint to continue from."""
        return checkpoint.exists(self.path)

    def checkpoint(self, name: str = checkpoint.LAST) -> checkpoint.Checkpoint:
        """The checkpoint `name` (HiltError when missing, damaged or an old pickle)."""
        return checkpoint.load(self.path, name, what=self.what)

    # writing (while holding the lock)

    def write_config(self, record: dict) -> None:
        """config.json: the run's settings (once, when the run is made)."""
        write_json(self.path / CONFIG, record)

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.csv: one row per epoch and split."""
        write_csv(self.path / METRICS, rows)

    def write_summary(self, summary: dict) -> None:
        """summary.json: status and final metrics."""
        write_json(self.path / SUMMARY, summary)

    def write_checkpoint(self, ckpt: checkpoint.Checkpoint, best: bool = False) -> None:
        """checkpoint.npz (and checkpoint-best.npz when `best`)."""
        checkpoint.save(self.path, ckpt, best)

    def write_error(self, text: str) -> None:
        """error.log: a crashed run's traceback."""
        write_text(self.path / ERROR_LOG, text)


def run_folders(root: Path):
    """Every run folder below `root` (folders with a summary.json and a config.json), sorted."""
    for summary in sorted(Path(root).rglob(SUMMARY)):
        if (summary.parent / CONFIG).is_file():
            yield RunFolder(summary.parent)


class MemoryFolder(RunFolder):
    """A run kept in memory, not on disk (the Python API's `out=None`): RunFolder's interface, and
    no file is written. Its checkpoint is a copy, so the run can be resumed in the same process."""

    path = None
    what = "the run in memory (out=None)"

    def __init__(self):  # noqa: D107 (no path: nothing on disk)
        self._config: dict | None = None
        self._summary: dict = {}
        self._rows: list[dict] = []
        self._checkpoints: dict[str, checkpoint.Checkpoint] = {}
        self.error_log: str | None = None

    def lock(self):
        return contextlib.nullcontext()

    def discard(self) -> None:
        self.__init__()

    def is_run(self) -> bool:
        return self._config is not None

    def config(self) -> dict:
        return copy.deepcopy(self._config)

    def summary(self) -> dict:
        return copy.deepcopy(self._summary)

    def metrics(self) -> list[dict]:
        return [dict(row) for row in self._rows]

    @property
    def status(self) -> str | None:
        return self._summary.get("status")

    def has_checkpoint(self) -> bool:
        return checkpoint.LAST in self._checkpoints

    def checkpoint(self, name: str = checkpoint.LAST) -> checkpoint.Checkpoint:
        if name not in self._checkpoints:
            raise HiltError(f"{self.what}: no {name} yet")
        return copy.deepcopy(self._checkpoints[name])

    def write_config(self, record: dict) -> None:
        self._config = copy.deepcopy(record)

    def write_metrics(self, rows: list[dict]) -> None:
        self._rows = [dict(row) for row in rows]

    def write_summary(self, summary: dict) -> None:
        self._summary = copy.deepcopy(summary)

    def write_checkpoint(self, ckpt: checkpoint.Checkpoint, best: bool = False) -> None:
        kept = copy.deepcopy(ckpt)
        self._checkpoints[checkpoint.LAST] = kept
        if best:
            self._checkpoints[checkpoint.BEST] = kept

    def write_error(self, text: str) -> None:
        self.error_log = text
