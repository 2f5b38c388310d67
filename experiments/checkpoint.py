"""Checkpoints of a run: everything `train --resume` needs to continue it.

`checkpoint.pkl` is written atomically after every epoch (and after the epoch-0 evaluation), and
`checkpoint-best.pkl` too when the run keeps its best epoch. A checkpoint holds the network state
(exact: weights and optimizer state; analog: the aihwkit tiles' own state, hidden device
parameters included; see Crossbar.state_dict), the data-order RNG state, the epoch, the metrics
rows so far (exact floats, so a resumed run rewrites metrics.csv bit for bit), the training wall
time so far and the best epoch. The rules are stateless and there is no lr schedule yet.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

from devices.errors import HiltError
from experiments.results import write_pickle

FORMAT = 1
LAST, BEST = "checkpoint.pkl", "checkpoint-best.pkl"


@dataclass
class Checkpoint:
    epoch: int
    network: dict
    order_rng: dict
    rows: list[dict]
    wall_time_s: float
    best: dict = field(default_factory=dict)  # {"epoch", metric name: value} of the best epoch so far
    format: int = FORMAT


def save(run_dir: Path, ckpt: Checkpoint, best: bool = False) -> None:
    state = ckpt.__dict__
    write_pickle(Path(run_dir) / LAST, state)
    if best:
        write_pickle(Path(run_dir) / BEST, state)


def load(run_dir: Path, name: str = LAST) -> Checkpoint:
    path = Path(run_dir) / name
    if not path.is_file():
        raise HiltError(f"--resume {run_dir}: no {name} there (the run stopped before its first checkpoint, "
                        "or was made by a hilt without checkpoints); start it again")
    try:
        with open(path, "rb") as fh:
            state = pickle.load(fh)
    except Exception as err:  # a truncated or foreign file: say which, not how unpickling failed
        raise HiltError(f"--resume {run_dir}: {name} cannot be read ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise HiltError(f"--resume {run_dir}: {name} is not a hilt checkpoint of format {FORMAT}")
    return Checkpoint(**state)
