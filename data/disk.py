"""Image datasets read from `--data-dir` in their standard on-disk formats (`--download` fetches
them first: data/download.py).

| name | files under DATA_DIR | read by |
|---|---|---|
| mnist | MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte | torchvision MNIST |
| fashion-mnist | FashionMNIST/raw/ (same names) | torchvision FashionMNIST |
| cifar10 | cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} | restricted unpickler (below) |
| cifar100 | cifar-100-python/{train, test, meta} | restricted unpickler |
| stl10 | stl10_binary/{train,test}_{X,y}.bin, class_names.txt | torchvision STL10 |
| tiny-imagenet | tiny-imagenet-200/train/WNID/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt | ImageFolder + decode_image |

torchvision checks CIFAR and STL-10 files against the md5 of the full release; hilt checks that the
files are there and lets the reader fail on a bad one, so subsets and the tests' fakes read too.
CIFAR's "python version" batches are pickles, and a pickle can run code when it is opened
(torchvision opens them with plain `pickle.load`). hilt reads them with an unpickler that admits
only NumPy's array reconstruction; dicts, lists, bytes, str and numbers need no class at all. A
batch that asks for anything else is refused with one line. Labels outside [0, classes) are too.
Images become float32 (C, H, W), scaled to [0, 1] and normalised per channel as each paper does:
MNIST and Fashion-MNIST raw (Høier & Zach 2024, App. A.1), CIFAR with Two Tales' statistics (§6.2; cifar10
`norm=simclr` gives CLAPP++'s), STL-10 and Tiny ImageNet with CLAPP++'s.
Options: `train_size=N`, `test_size=N` keep the first N images of a split (train_size also of the
unlabeled one); stl10 `ssl=unlabeled` also reads unlabeled_X.bin (100 000 images), which
self-supervised rules then train on (the probe still uses the labelled train split).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hilt.data.dataset import Dataset
from hilt.errors import HiltError, check_memory

Norm = tuple[tuple[float, ...], tuple[float, ...]] | None  # per-channel (mean, std) of [0, 1] pixels
TWO_TALES_CIFAR10: Norm = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
TWO_TALES_CIFAR100: Norm = ((0.5074, 0.4867, 0.4411), (0.2011, 0.1987, 0.2025))
SIMCLR_CIFAR10: Norm = (tuple(v / 255 for v in (125.3, 123.0, 113.9)), tuple(v / 255 for v in (63.0, 62.1, 66.7)))
SIMCLR_STL10: Norm = ((0.4313, 0.4156, 0.3663), (0.2683, 0.2610, 0.2687))
SIMCLR_TINY: Norm = ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262))


@dataclass(frozen=True)
class DiskFormat:
    files: tuple[str, ...]  # what must exist under DATA_DIR
    what: str  # how the user gets these files
    read: Callable[[Path, bool], tuple[np.ndarray, np.ndarray]]  # (root, train) -> uint8 NCHW, labels
    n_classes: int
    norms: dict[str, Norm]  # the first is the default
    image_bytes: int  # bytes of one float32 image, for the memory check
    unlabeled: tuple[str, Callable[[Path], np.ndarray]] | None = None  # (file, reader) of an unlabeled split


def _mnist_reader(cls_name: str):
    def read(root: Path, train: bool):
        from torchvision import datasets

        ds = getattr(datasets, cls_name)(str(root), train=train, download=False)
        return ds.data.numpy()[:, None], ds.targets.numpy()

    return read


def _present_only(cls, train_files: int | None = None):
    """A torchvision dataset class whose file checks test presence, not the full release's md5
    (torchvision's check_integrity with md5=None); train_files keeps the first n of train_list."""
    unchecked = lambda entries: [[name, None] for name, _ in entries]  # noqa: E731
    attrs = {"train_list": unchecked(cls.train_list[:train_files]), "test_list": unchecked(cls.test_list)}
    if hasattr(cls, "meta"):
        attrs["meta"] = {**cls.meta, "md5": None}
    return type(cls.__name__, (cls,), attrs)


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, bytes, str, numbers and NumPy arrays, nothing else: every
    other global a pickle names (the way a crafted pickle runs code) is an UnpicklingError."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a data file does not need (refused)")


def _cifar_reader(folder: str, train_files: tuple[str, ...], test_files: tuple[str, ...], label_key: str):
    def read(root: Path, train: bool):
        images, labels = [], []
        for name in train_files if train else test_files:
            with open(root / folder / name, "rb") as fh:
                entry = ArraysOnlyUnpickler(fh, encoding="latin1").load()
            if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
                raise ValueError(f"{name} is not a CIFAR batch (a dict with data and {label_key})")
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(entry[label_key], dtype=np.int64))
        return np.concatenate(images), np.concatenate(labels)

    return read


def _read_stl10(root: Path, train: bool):
    from torchvision.datasets import STL10

    # train_list[2] is the unlabeled split, not needed for train and test
    ds = _present_only(STL10, train_files=2)(str(root), split="train" if train else "test", download=False)
    return ds.data, ds.labels.astype(np.int64)


def _read_stl10_unlabeled(root: Path) -> np.ndarray:
    from torchvision.datasets import STL10

    return _present_only(STL10)(str(root), split="unlabeled", download=False).data


def _decode(paths: list[Path]) -> np.ndarray:
    from torchvision.io import ImageReadMode, decode_image

    return np.stack([decode_image(str(p), mode=ImageReadMode.RGB).numpy() for p in paths]) if paths else \
        np.zeros((0, 3, 64, 64), np.uint8)


def _read_tiny(root: Path, train: bool):
    from torchvision.datasets import ImageFolder

    base = root / "tiny-imagenet-200"
    classes = ImageFolder(str(base / "train"), allow_empty=True)
    if train:
        paths, labels = zip(*classes.samples) if classes.samples else ((), ())
        return _decode([Path(p) for p in paths]), np.asarray(labels, dtype=np.int64)
    rows = [line.split("\t")[:2] for line in (base / "val" / "val_annotations.txt").read_text().splitlines() if line]
    unknown = sorted({wnid for _, wnid in rows} - set(classes.class_to_idx))
    if unknown:
        raise HiltError(f"tiny-imagenet: val_annotations.txt names classes without a train folder: {', '.join(unknown[:5])}")
    images = _decode([base / "val" / "images" / name for name, _ in rows])
    return images, np.asarray([classes.class_to_idx[wnid] for _, wnid in rows], dtype=np.int64)


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FORMATS: dict[str, DiskFormat] = {
    "mnist": DiskFormat(tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES),
                        "the four uncompressed MNIST idx files", _mnist_reader("MNIST"), 10, {"raw": None}, 4 * 784),
    "fashion-mnist": DiskFormat(tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES),
                                "the four uncompressed Fashion-MNIST idx files", _mnist_reader("FashionMNIST"), 10,
                                {"raw": None}, 4 * 784),
    "cifar10": DiskFormat(tuple(f"cifar-10-batches-py/{f}" for f in
                                [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]),
                          "cifar-10-python.tar.gz unpacked",
                          _cifar_reader("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                                        ("test_batch",), "labels"), 10,
                          {"dp": TWO_TALES_CIFAR10, "simclr": SIMCLR_CIFAR10}, 4 * 3072),
    "cifar100": DiskFormat(tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
                           "cifar-100-python.tar.gz unpacked",
                           _cifar_reader("cifar-100-python", ("train",), ("test",), "fine_labels"), 100,
                           {"dp": TWO_TALES_CIFAR100}, 4 * 3072),
    "stl10": DiskFormat(tuple(f"stl10_binary/{f}" for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin",
                                                            "class_names.txt")),
                        "stl10_binary.tar.gz unpacked", _read_stl10, 10, {"simclr": SIMCLR_STL10}, 4 * 3 * 96 * 96,
                        unlabeled=("stl10_binary/unlabeled_X.bin", _read_stl10_unlabeled)),
    "tiny-imagenet": DiskFormat(("tiny-imagenet-200/train", "tiny-imagenet-200/val/images",
                                 "tiny-imagenet-200/val/val_annotations.txt"),
                                "tiny-imagenet-200.zip unpacked", _read_tiny, 200, {"simclr": SIMCLR_TINY},
                                4 * 3 * 64 * 64),
}
SIZES = {"mnist": (60000, 10000), "fashion-mnist": (60000, 10000), "cifar10": (50000, 10000),
         "cifar100": (50000, 10000), "stl10": (5000, 8000), "tiny-imagenet": (100000, 10000)}
UNLABELED_SIZE = 100000  # STL-10's unlabeled split


def _size(params: dict[str, str], key: str) -> int | None:
    if key not in params:
        return None
    try:
        value = int(params[key])
    except ValueError:
        value = 0
    if value < 1:
        raise HiltError(f"--data-set {key}={params[key]}: expected a whole number >= 1")
    return value


def _missing(name: str, root: Path) -> list[str]:
    """The files of dataset `name` not under root."""
    return [f for f in FORMATS[name].files if not (root / f).exists()]


def check_files(name: str, data_dir: str | None) -> Path:
    """The dataset's folder under data_dir, or HiltError naming the files that are missing and
    where."""
    fmt = FORMATS[name]
    if not data_dir:
        raise HiltError(f"dataset {name} is read from disk: pass --data-dir DIR with {fmt.what} in it "
                        f"({', '.join(fmt.files)}), or --data-dir DIR --download to fetch it there")
    root = Path(data_dir).expanduser()
    missing = _missing(name, root)
    if len(missing) == len(fmt.files):
        raise HiltError(f"dataset {name}: none of its files are under {root}; expected {fmt.what} there "
                        f"({', '.join(fmt.files)}); add --download to fetch it")
    if missing:
        raise HiltError(f"dataset {name} under {root} is incomplete: missing {', '.join(missing)} ({fmt.what}); "
                        "add --download to fetch what is missing")
    return root


def normalise(images: np.ndarray, norm: Norm) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32, [0, 1] then (x - mean) / std per channel."""
    x = images.astype(np.float32) / 255.0
    if norm is not None:
        mean, std = (np.asarray(v, dtype=np.float32)[None, :, None, None] for v in norm)
        x -= mean
        x /= std
    return x


def load_from_disk(name: str, params: dict[str, str], data_dir: str | None, download: bool = False) -> Dataset:
    """An on-disk dataset read from data_dir in its standard layout, normalised per FORMATS, with
    its --data-set options; `download`: fetch its release files first when some are missing
    (data/download.py)."""
    fmt = FORMATS[name]
    allowed = ({"train_size", "test_size"} | ({"norm"} if len(fmt.norms) > 1 else set())
               | ({"ssl"} if fmt.unlabeled else set()))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise HiltError(f"dataset {name}: unknown --data-set option {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    norm_name = params.get("norm", next(iter(fmt.norms)))
    if norm_name not in fmt.norms:
        raise HiltError(f"--data-set norm={norm_name}: allowed for {name}: {', '.join(fmt.norms)}")
    ssl = params.get("ssl", "train")
    if ssl not in ("train", "unlabeled"):
        raise HiltError(f"--data-set ssl={ssl}: allowed for {name}: train, unlabeled")
    sizes = [_size(params, "train_size"), _size(params, "test_size")]
    if download and (not data_dir or _missing(name, Path(data_dir).expanduser())):
        from hilt.data.download import download as fetch

        fetch(name, data_dir)
    root = check_files(name, data_dir)
    n = [min(s or full, full) for s, full in zip(sizes, SIZES[name])] + [UNLABELED_SIZE * (ssl == "unlabeled")]
    # float32 images plus the uint8 ones they are made from (a quarter of that)
    check_memory(f"dataset {name} as float32 ({' + '.join(map(str, filter(None, n)))} images)",
                 1.25 * sum(n) * fmt.image_bytes)
    splits = []
    for train, keep in zip((True, False), sizes):
        try:
            images, labels = fmt.read(root, train)
        except HiltError:
            raise
        except Exception as err:  # a truncated or foreign file: name it, no traceback
            raise HiltError(f"dataset {name}: cannot read its {'training' if train else 'test'} files under {root} "
                            f"({type(err).__name__}: {err})") from None
        labels = np.asarray(labels).astype(np.int64)
        if len(labels) != len(images):
            raise HiltError(f"dataset {name} under {root}: {len(images)} {'training' if train else 'test'} images "
                            f"but {len(labels)} labels ({fmt.what})")
        if len(labels) and not 0 <= labels.min() <= labels.max() < fmt.n_classes:
            raise HiltError(f"dataset {name} under {root}: {'training' if train else 'test'} labels range from "
                            f"{labels.min()} to {labels.max()}; {name} has classes 0 to {fmt.n_classes - 1} ({fmt.what})")
        splits += [normalise(images[:keep], fmt.norms[norm_name]), labels[:keep]]
    unlabeled = None
    if ssl == "unlabeled":
        file, read = fmt.unlabeled
        if not (root / file).is_file():
            raise HiltError(f"--data-set ssl=unlabeled: {root / file} is missing ({fmt.what})")
        try:
            unlabeled = normalise(read(root)[: sizes[0]], fmt.norms[norm_name])
        except Exception as err:
            raise HiltError(f"dataset {name}: cannot read {root / file} ({type(err).__name__}: {err})") from None
    return Dataset(name, *splits, n_classes=fmt.n_classes, norm=fmt.norms[norm_name], x_unlabeled=unlabeled,
                   info={"data_dir": str(root), "norm": norm_name, "ssl": ssl, "source": fmt.what})
