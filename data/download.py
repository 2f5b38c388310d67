"""`--download`: fetch an on-disk dataset's release files into --data-dir.

The addresses and MD5 sums are torchvision's own (its dataset classes' `mirrors`/`resources`,
`url`/`filename`/`tgz_md5`); Tiny ImageNet, which torchvision does not ship, is the CS231n
release. Checking and unpacking are torchvision's too (`check_integrity`, `extract_archive`).
The transfer itself is a plain urllib stream with a Rich progress bar on stderr (off a terminal:
one line per file), so that a log gets no progress-bar noise.

Nothing half-written is left: every file goes to a staging folder inside --data-dir, is checked
against its MD5 (a wrong sum or a cut-off transfer is one line naming the file, the sum expected
and the sum found), unpacked there, and only then moved into place; the staging folder is removed
whatever happens (an error, Ctrl-C). Files already in place are kept as they are.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hilt.errors import HiltError

TIMEOUT_S = 60  # a server that sends nothing for this long is given up on
CHUNK = 1 << 16
TINY_IMAGENET = ("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de")


@dataclass(frozen=True)
class Release:
    """One release file: where it is, its MD5, and where under --data-dir its content goes."""

    url: str
    md5: str
    unpack_to: str  # the folder under --data-dir its content goes to

    @property
    def filename(self) -> str:
        """The release file's name (the last part of its address)."""
        return self.url.rsplit("/", 1)[-1]


def releases(name: str) -> list[Release]:
    """The release files of dataset `name` (HiltError when it has none to download)."""
    from torchvision import datasets

    if name in ("mnist", "fashion-mnist"):
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        return [Release(cls.mirrors[0] + file, md5, f"{cls.__name__}/raw") for file, md5 in cls.resources]
    if name in ("cifar10", "cifar100", "stl10"):
        cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "stl10": datasets.STL10}[name]
        return [Release(cls.url, cls.tgz_md5, ".")]
    if name == "tiny-imagenet":
        return [Release(*TINY_IMAGENET, ".")]
    raise HiltError(f"dataset {name} has no release files to download")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(release: Release, path: Path, progress) -> None:
    request = urllib.request.Request(release.url, headers={"User-Agent": "hilt"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(path, "wb") as fh:
            total = response.length
            task = progress.add_task(release.filename, total=total)
            if progress.disable:
                size = f" ({total / 2**20:.1f} MiB)" if total else ""
                print(f"downloading {release.url}{size}", file=sys.stderr, flush=True)
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                progress.advance(task, len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:  # no route, HTTP errors, a cut
        reason = getattr(err, "reason", None) or err
        raise HiltError(f"cannot download {release.url}: {reason}; nothing was kept") from None


def download(name: str, data_dir: str | None) -> Path:
    """Fetch, check and unpack dataset `name` into data_dir; its path. HiltError (one line) for a
    server that cannot be reached, a file whose MD5 is not the release's, an archive that does not
    unpack; nothing is left behind then."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
    from torchvision.datasets.utils import extract_archive

    if not data_dir:
        raise HiltError(f"--download puts dataset {name} under --data-dir DIR: give one")
    root = Path(data_dir).expanduser()
    wanted = releases(name)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".hilt-download-{name}-", dir=root))
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as progress:
            for release in wanted:
                archive = staging / release.filename
                _fetch(release, archive, progress)
                found = _md5(archive)
                if found != release.md5:
                    raise HiltError(f"{release.url}: MD5 {found} is not the release's {release.md5} (a changed or cut-off "
                                    "file); nothing was kept")
                into = staging / "unpacked" / release.unpack_to
                into.mkdir(parents=True, exist_ok=True)
                try:
                    extract_archive(str(archive), str(into))
                except Exception as error:  # a damaged archive that still matched, a full disk
                    raise HiltError(f"{release.url}: cannot unpack it ({type(error).__name__}: {error}); nothing was kept") from None
        _move_into(staging / "unpacked", root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _move_into(source: Path, target: Path) -> None:
    """Move every file under source to the same place under target, keeping files already there."""
    for folder, _, files in os.walk(source):
        place = target / Path(folder).relative_to(source)
        place.mkdir(parents=True, exist_ok=True)
        for file in files:
            if not (place / file).exists():
                os.replace(Path(folder) / file, place / file)
