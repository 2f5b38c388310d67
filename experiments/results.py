"""Run directories and atomic writes (temp file + rename: a reader never sees half a file)."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    _atomic_write(Path(path), lambda fh: json.dump(obj, fh, indent=2, default=_jsonable))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    _atomic_write(Path(path), lambda fh: frame.to_csv(fh, index=False))


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def new_run_dir(root: Path, label: str) -> Path:
    """results/runs/<timestamp>-<label>[-N], created exclusively."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = root / (f"{stamp}-{label}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run directory under {root}")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("hilt", "numpy", "torch", "aihwkit", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
