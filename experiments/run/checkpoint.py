"""Checkpoints of a run: everything `train --resume` needs to continue it.

`checkpoint.npz` is written atomically after every epoch (and after the epoch-0 evaluation), and
`checkpoint-best.npz` too when the run keeps its best epoch. A checkpoint holds the network state
(exact: weights and optimizer state; analog: each tile's weights, hidden device parameters,
learning rate and compound counters as arrays, see Crossbar.state_dict; the tiles themselves are
rebuilt from config.json's device spec), the data-order RNG state, the epoch, the metrics rows so
far (exact floats, so a resumed run rewrites metrics.csv bit for bit), the training wall time so
far, the best epoch and the first step's loss (the divergence check's reference).

The file holds arrays and plain data only and is read without unpickling (files.read_tree), so
a checkpoint from someone else cannot run code. Checkpoints of hilt before this format were
pickles (`checkpoint.pkl`); they are refused, never opened.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from hilt.errors import HiltError
from hilt.experiments.run.files import read_tree, write_tree

FORMAT = 2
LAST, BEST = "checkpoint.npz", "checkpoint-best.npz"
PICKLES = {LAST: "checkpoint.pkl", BEST: "checkpoint-best.pkl"}  # the files of format 1


@dataclass
class Checkpoint:
    epoch: int
    network: dict
    order_rng: dict
    rows: list[dict]
    wall_time_s: float
    best: dict = field(default_factory=dict)  # {"epoch", metric name: value} of the best epoch so far
    initial_loss: float | None = None  # training loss per sample of the first step
    format: int = FORMAT


def save(run_dir: Path, ckpt: Checkpoint, best: bool = False) -> None:
    """Write the checkpoint to run_dir atomically (and as the best one when `best`)."""
    state = ckpt.__dict__
    write_tree(Path(run_dir) / LAST, state)
    if best:
        write_tree(Path(run_dir) / BEST, state)


def exists(run_dir: Path) -> bool:
    """Whether run_dir has a checkpoint.npz."""
    return (Path(run_dir) / LAST).is_file()


def load(run_dir: Path, name: str = LAST, what: str | None = None) -> Checkpoint:
    """The checkpoint `name` of a run folder. `what` names the folder as the user typed it (default
    "--resume RUN_DIR"); HiltError naming the file when it is missing, damaged or a pickle."""
    what = what or f"--resume {run_dir}"
    path = Path(run_dir) / name
    if not path.is_file():
        if (Path(run_dir) / PICKLES[name]).is_file():
            raise HiltError(f"{what}: {PICKLES[name]} is a checkpoint of an older hilt, a pickle, which can run code "
                            "when opened; hilt does not open pickles. Start the run again")
        raise HiltError(f"{what}: no {name} there (the run stopped before its first checkpoint, "
                        "or was made by a hilt without checkpoints); start it again")
    try:
        state = read_tree(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # EOFError: an empty file
        raise HiltError(f"{what}: {name} is damaged or not a hilt checkpoint ({type(err).__name__})") from None
    names = {f.name for f in fields(Checkpoint)}
    if not isinstance(state, dict) or state.get("format") != FORMAT or not set(state) <= names:
        raise HiltError(f"{what}: {name} is not a hilt checkpoint of format {FORMAT}")
    try:
        return Checkpoint(**state)
    except TypeError:
        raise HiltError(f"{what}: {name} lacks fields of a hilt checkpoint") from None


def restore(net, ckpt: Checkpoint, what: str, name: str = LAST) -> None:
    """Load the checkpoint's network state into `net` (built from the run's config.json); HiltError
    when it does not fit (a checkpoint of another model or device, or a damaged one)."""
    try:
        net.load_state_dict(ckpt.network)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise HiltError(f"{what}: {name} does not fit the network of this run's config.json ({err})") from None
