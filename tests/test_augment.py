"""Augmentations (torchvision v2, per image, seeded) and their --data-set switches."""

import numpy as np
import pytest
import torch

from hilt.data import load_dataset
from hilt.data.augment import crop_flip, simclr_view
from hilt.errors import HiltError
from tests.test_data import make_fake


@pytest.mark.slow
def test_crop_flip_is_a_zero_padded_shift_and_maybe_a_flip_of_each_image(rng):
    x = rng.normal(size=(12, 3, 8, 8)).astype(np.float32)
    out = crop_flip(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    flips = set()
    for i in range(len(x)):
        crops = np.stack([padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(9) for dx in range(9)])
        plain = (crops == out[i]).all(axis=(1, 2, 3)).any()
        flipped = (crops[..., ::-1] == out[i]).all(axis=(1, 2, 3)).any()
        assert plain or flipped, f"image {i} is not a crop of the padded image"
        flips.add(bool(flipped))
    assert flips == {False, True}  # both happen among 12 images


def test_augmentations_are_seeded_and_leave_torch_rng_alone(rng):
    x = rng.uniform(size=(6, 3, 32, 32)).astype(np.float32)
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    a = simclr_view(x, np.random.default_rng(1))
    b = simclr_view(x, np.random.default_rng(1))
    assert torch.equal(torch.rand(3), before)
    np.testing.assert_array_equal(a, b)
    c = simclr_view(x, np.random.default_rng(2))
    assert a.shape == x.shape and np.isfinite(a).all() and not np.array_equal(a, c)
    np.testing.assert_array_equal(crop_flip(x, np.random.default_rng(3)), crop_flip(x, np.random.default_rng(3)))


def test_simclr_views_respect_the_normalisation(rng):
    norm = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    x = rng.uniform(size=(4, 3, 32, 32)).astype(np.float32)
    normalised = (x - np.asarray(norm[0])[:, None, None]) / np.asarray(norm[1])[:, None, None]
    raw = simclr_view(x, np.random.default_rng(0))
    view = simclr_view(normalised.astype(np.float32), np.random.default_rng(0), norm)
    np.testing.assert_allclose(view * np.asarray(norm[1])[:, None, None] + np.asarray(norm[0])[:, None, None], raw,
                               atol=1e-5)


def test_augment_and_views_options_are_checked_against_the_data(tmp_path, rng):
    with pytest.raises(HiltError, match="augment=crop-flip: allowed for rhm: none"):
        load_dataset("rhm", ["augment=crop-flip"])
    with pytest.raises(HiltError, match="views=simclr: allowed for digits: shift"):
        load_dataset("digits", ["views=simclr"])
    with pytest.raises(HiltError, match="augment=mixup: allowed for digits: none, crop-flip"):
        load_dataset("digits", ["augment=mixup"])
    make_fake("cifar10", tmp_path, rng)
    ds = load_dataset("cifar10", ["augment=crop-flip", "views=simclr"], data_dir=str(tmp_path))
    assert ds.augment == "crop-flip" and ds.pairing == "simclr"
    pairs = ds.pairs(np.arange(4), np.random.default_rng(0))
    assert pairs.first.shape == (4, 3, 32, 32) and not np.array_equal(pairs.first, pairs.second)


def write_colour_cifar10(root, rng, n_train=60, n_test=30):
    """CIFAR-10 files (the real format) whose class is the colour of a centred square on noise:
    learnable, and kept by crops, flips and colour-preserving views."""
    from tests.test_data import write_pickle

    def split(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 60, size=(n, 3, 32, 32), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, c, 8:24, 8:24] = 250
        return x, y

    (xtr, ytr), (xte, yte) = split(n_train), split(n_test)
    base = root / "cifar-10-batches-py"
    for i, rows in enumerate(np.array_split(np.arange(n_train), 5), 1):
        write_pickle(base / f"data_batch_{i}", {"data": xtr[rows].reshape(len(rows), -1), "labels": ytr[rows].tolist()})
    write_pickle(base / "test_batch", {"data": xte.reshape(n_test, -1), "labels": yte.tolist()})
    write_pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})


@pytest.mark.parametrize("rule,option", [("bp", "augment=crop-flip"), ("clapp_pp", "views=simclr")])
def test_train_with_augmentation_on_image_files(tmp_path, rng, rule, option):
    """The training batches are augmented (they differ from the stored images, and between epochs)
    and the run learns the classes anyway (above the 1/3 of chance)."""
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.run.resume import open_run
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.trainer import Trainer, train

    write_colour_cifar10(tmp_path / "data", rng)
    cfg = TrainConfig(dataset="cifar10", data_set=[option], data_dir=str(tmp_path / "data"), model="cnn:4",
                      device="exact", rule=rule, epochs=4, batch_size=6, lr=0.05, out=str(tmp_path / "runs"))
    setup = build(cfg)
    trainer = Trainer(setup, open_run(setup))
    idx = np.arange(6)
    first, second = (trainer.batch(idx, np.random.default_rng(s))[0] for s in (0, 1))
    if rule == "bp":
        stored = setup.data.x_train[idx]
        assert first.shape == stored.shape and not np.array_equal(first, stored) and not np.array_equal(first, second)
    else:
        assert not np.array_equal(first.first, first.second) and not np.array_equal(first.first, second.first)
    summary = train(build(cfg))
    assert summary["status"] == "finished" and summary["test_accuracy"] > 0.6, summary["test_accuracy"]
