"""Run directories and atomic writes (temp file + rename: a reader never sees half a file).

Files get the mode a plain `open` would give them under the user's umask (mkstemp alone leaves
0600, which hides results from colleagues on shared storage).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import platform
import tempfile
from datetime import datetime
from pathlib import Path

from devices.errors import HiltError


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, write, binary: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    _atomic_write(Path(path), lambda fh: json.dump(obj, fh, indent=2, default=_jsonable))


def write_csv(path: Path, table) -> None:
    """A pandas DataFrame, or a list of dicts (columns in order of first appearance, blanks where a
    row has no value; written with the csv module so that run files need no pandas import)."""
    if not isinstance(table, list):
        _atomic_write(Path(path), lambda fh: table.to_csv(fh, index=False))
        return
    columns = list(dict.fromkeys(key for row in table for key in row))

    def write(fh):
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)

    _atomic_write(Path(path), write)


def write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(text))


def write_pickle(path: Path, obj) -> None:
    _atomic_write(Path(path), lambda fh: pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL), binary=True)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def check_out_dir(root: Path) -> None:
    """Make `root` (the folder of run folders) if needed; HiltError, naming why, if that fails."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HiltError(f"--out {root}: is a file; give a folder for the run folders") from None
    except NotADirectoryError:
        raise HiltError(f"--out {root}: lies under a file; give a folder for the run folders") from None
    except OSError as err:
        raise HiltError(f"--out {root}: cannot make this folder ({err.strerror})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise HiltError(f"--out {root}: no permission to write there")


def new_run_dir(root: Path, label: str) -> Path:
    """results/runs/<timestamp>-<label>[-N], created exclusively."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    check_out_dir(root)
    try:
        for n in range(1000):
            path = root / (f"{stamp}-{label}" + (f"-{n}" if n else ""))
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as err:
        raise HiltError(f"--out {root}: cannot create a run folder there ({err.strerror})") from None
    raise HiltError(f"--out {root}: 1000 run folders named {stamp}-{label} already exist")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("hilt", "numpy", "torch", "aihwkit", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
