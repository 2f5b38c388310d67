"""Run folders: atomic writes, safe array files, one writer per folder.

- Atomic writes (temp file + rename: a reader never sees half a file). Files get the mode a plain
  `open` would give them under the user's umask (mkstemp alone leaves 0600, which hides results
  from colleagues on shared storage).
- Array files (`write_tree` / `read_tree`): a tree of dicts, lists, numbers, strings and NumPy
  arrays as one `.npz`: the arrays as members, the rest as JSON text in member `tree`. It is read
  with `allow_pickle=False`, so a file that hilt opens cannot run code (a pickle can).
- One writer (`one_writer`): a folder that a process writes is locked (filelock, `.lock`) while
  it writes; a second writer gets one line naming the holder's PID. The holder's PID and command
  are in `.writer.json`; stale temp files of a killed writer are removed when the lock is taken.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import socket
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from hilt import userfiles
from hilt.errors import HiltError


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
    """Write obj as JSON to path atomically."""
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
    """Write text to path atomically."""
    _atomic_write(Path(path), lambda fh: fh.write(text))


def _encode(tree, arrays: dict):
    """The tree with every array replaced by {"__array__": its member name} (arrays collected)."""
    if isinstance(tree, dict):
        if not all(isinstance(k, str) for k in tree):
            raise TypeError("write_tree: dict keys must be strings")
        return {k: _encode(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_encode(v, arrays) for v in tree]
    if isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:
            raise TypeError("write_tree: object arrays cannot be stored")
        name = f"a{len(arrays)}"
        arrays[name] = tree
        return {"__array__": name}
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"write_tree: cannot store a {type(tree).__name__}")


def _decode(tree, arrays):
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        return {k: _decode(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    return tree


def write_tree(path: Path, tree) -> None:
    """Write a tree of dicts, lists, numbers, strings and arrays as one .npz (arrays as members, the
    rest as JSON), atomically."""
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_encode(tree, arrays))
    _atomic_write(Path(path), lambda fh: np.savez(fh, tree=np.array(text), **arrays), binary=True)


def read_tree(path: Path):
    """The tree of `write_tree`. ValueError (or OSError, zipfile's errors) on a file that is not one."""
    with np.load(Path(path), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    text = arrays.pop("tree", None)
    if text is None or text.dtype.kind != "U" or text.ndim != 0:
        raise ValueError("no tree member")
    return _decode(json.loads(str(text)), arrays)


def read_json(path: Path) -> dict:
    """A JSON object from a run file; HiltError naming the file when it is not one (damaged, hand-edited)."""
    path = Path(path)
    try:
        value = userfiles.read_json(path, str(path))
    except HiltError as err:
        detail = str(err).removeprefix(f"{path}: ")
        raise HiltError(f"{path}: damaged, not a JSON file ({detail}); restore it or start the run again") from None
    if not isinstance(value, dict):
        raise HiltError(f"{path}: damaged, expected a JSON object, found {type(value).__name__}")
    return value


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,@-]*")


def check_plain_name(flag: str, name: str) -> str:
    """A folder name that stays inside its parent: letters, digits and ._+=,@- (not first), no '..'."""
    if not PLAIN_NAME.fullmatch(name) or ".." in name or len(name) > 200:
        raise HiltError(f"{flag} {name!r}: give a plain folder name (letters, digits and . _ + = , @ -, "
                        "starting with a letter or digit, no '..', no '/'); --out chooses where it goes")
    return name


LOCK, WRITER = ".lock", ".writer.json"


@contextmanager
def one_writer(folder: Path, what: str):
    """Hold `folder`'s lock while the body writes there (HiltError naming the holder if another
    process holds it). `what` names the folder as the user gave it, e.g. "--resume results/runs/x"."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = json.loads((folder / WRITER).read_text())
        except (OSError, ValueError):
            holder = {}
        who = f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
        raise HiltError(f"{what}: another hilt process ({who}) is writing this folder; wait for it to end, "
                        "or use another folder") from None
    try:
        for stale in folder.glob(".*.tmp"):  # left by a writer that was killed mid-write
            stale.unlink(missing_ok=True)
        write_json(folder / WRITER, {"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": datetime.now().isoformat(timespec="seconds"), "command": sys.argv})
        yield
    finally:
        (folder / WRITER).unlink(missing_ok=True)
        lock.release()


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


LABEL_BYTES = 100  # a run folder's label longer than this is cut, with a hash of the whole one


def _short_label(label: str) -> str:
    """The label, or its first part and a hash of all of it when it is too long for a file name
    (a device file's long name, a plug-in's long class name)."""
    if len(label.encode()) <= LABEL_BYTES:
        return label
    digest = hashlib.sha1(label.encode()).hexdigest()[:8]
    return label.encode()[: LABEL_BYTES - 9].decode(errors="ignore") + "-" + digest


def new_run_dir(root: Path, label: str) -> Path:
    """results/runs/<timestamp>-<label>[-N], created exclusively (a long label shortened)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = _short_label(label)
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
    """The versions of Python, the platform, hilt, NumPy, torch, aihwkit and scikit-learn."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("hilt", "numpy", "torch", "aihwkit", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
