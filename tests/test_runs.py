"""Runs as durable objects: checkpoints, --resume, kill-safe files, file modes."""

import json
import re
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.crossbar import ExactCrossbar
from hilt.analog.optim import make_optimizer
from hilt.cli import app
from hilt.devices import parse_device
from hilt.experiments.run.files import read_tree, write_tree
from tests.helpers import runner

CLI = Path(__file__).resolve().parents[1] / "cli.py"


def train(*args):
    result = runner.invoke(app, ["train", *args])
    return result


def only_run(root: Path) -> Path:
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def checkpoint_weights(run_dir: Path) -> list:
    return [c["weights"] for c in read_tree(run_dir / "checkpoint.npz")["network"]["crossbars"]]


@pytest.mark.parametrize("options", [
    ["--optimizer", "adam", "--lr", "0.001"],
    ["--rule", "dp_adjoint", "--momentum", "0.5", "--log-alignment"],
    ["--rule", "clapp_pp", "--optimizer", "adamw", "--lr", "0.0002", "--log-alignment", "--model", "mlp:64-32-32"],
])
def test_resume_on_exact_is_bit_identical(tmp_path, options):
    common = ["--device", "exact", "--seed", "3", *options]
    assert train(*common, "--epochs", "4", "--out", str(tmp_path / "whole")).exit_code == 0
    assert train(*common, "--epochs", "2", "--out", str(tmp_path / "split")).exit_code == 0
    split = only_run(tmp_path / "split")
    resumed = train("--resume", str(split), "--epochs", "4")
    assert resumed.exit_code == 0, resumed.output
    whole = only_run(tmp_path / "whole")
    assert (split / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    for a, b in zip(checkpoint_weights(split), checkpoint_weights(whole)):
        assert np.array_equal(a, b)
    summary = json.loads((split / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 4
    assert summary["resumes"] == [{"from_epoch": 2, "to_epochs": 4}]


def test_resume_refuses_changed_settings_and_finished_runs(tmp_path):
    assert train("--device", "exact", "--epochs", "1", "--out", str(tmp_path)).exit_code == 0
    run_dir = str(only_run(tmp_path))
    config = (Path(run_dir) / "config.json").read_bytes()
    for args, message in [
        (["--lr", "0.1"], "--lr 0.1 differs from the run's 0.05"),
        (["--set", "dw_min=0.1"], "--set ['dw_min=0.1'] differs"),
        (["--alpha", "0.5"], "--alpha 0.5 differs"),
        ([], "the run already has 1 epochs; pass --epochs N with N > 1"),
    ]:
        result = train("--resume", run_dir, *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert train("--resume", run_dir, "--epochs", "2", "--lr", "0.05", "--device", "exact").exit_code == 0
    assert (Path(run_dir) / "config.json").read_bytes() == config  # kept as it was
    assert train("--resume", str(tmp_path / "nope")).exit_code == 2


def through_file(state):
    """A state written and read back as checkpoints are (arrays and JSON, no pickle)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_tree(Path(folder) / "state.npz", state)
        return read_tree(Path(folder) / "state.npz")


def _hidden(tile, name):
    return tile.get_hidden_parameters()[name].numpy()


@pytest.mark.parametrize("device,hidden", [("rram", "persistent_weights"), ("pcm", "hidden_weights_0"), ("ecram", None)])
def test_analog_crossbar_state_restores_the_device_state(rng, device, hidden):
    """aihwkit's own unpickling re-applies write noise to the persistent weights (rram) and resets
    PCM's hidden weights; the crossbar's load_state_dict puts them back exactly."""
    spec = parse_device(device, seed=2)
    xbar = AnalogCrossbar(12, 20, True, spec)
    xbar.program(rng.uniform(-0.3, 0.3, (12, 21)).astype(np.float32))
    for _ in range(30):
        xbar.update(rng.uniform(0, 1, (8, 20)).astype(np.float32), rng.normal(0, 0.2, (8, 12)).astype(np.float32), 0.1)
    state = through_file(xbar.state_dict())
    other = AnalogCrossbar(12, 20, True, spec)
    other.load_state_dict(state)
    old, new = xbar.tiles[0][0], other.tiles[0][0]
    if hidden:
        assert np.array_equal(_hidden(old, hidden), _hidden(new, hidden))
        plain = pickle.loads(pickle.dumps(old))  # what aihwkit itself restores
        assert not np.array_equal(_hidden(old, hidden), _hidden(plain, hidden))
    else:
        assert np.array_equal(xbar.weights(), other.weights())
    assert other.scale == xbar.scale
    # it keeps training: the restored crossbar takes updates like the original
    x, d = rng.uniform(0, 1, (8, 20)).astype(np.float32), rng.normal(0, 0.2, (8, 12)).astype(np.float32)
    other.update(x, d, 0.1)
    assert np.isfinite(other.weights()).all()


def test_exact_crossbar_state_includes_the_optimizer(rng):
    def make():
        xbar = ExactCrossbar(5, 7, True, make_optimizer("adam"))
        xbar.program(np.zeros((5, 8), np.float32))
        return xbar

    a = make()
    x, d = rng.normal(size=(4, 7)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    a.update(x, d, 0.01)
    b = make()
    b.load_state_dict(through_file(a.state_dict()))
    for xbar in (a, b):
        xbar.update(x, d, 0.01)
    assert np.array_equal(a.weights(), b.weights())


@pytest.mark.slow
def test_resume_on_analog_stays_in_the_range_of_an_uninterrupted_run(tmp_path):
    whole, resumed = [], []
    for seed in (0, 1, 2):
        common = ["--device", "rram", "--seed", str(seed), "--json"]
        result = train(*common, "--epochs", "6", "--out", str(tmp_path / f"w{seed}"))
        whole.append(json.loads(result.stdout)["test_accuracy"])
        assert train(*common, "--epochs", "3", "--out", str(tmp_path / f"r{seed}")).exit_code == 0
        result = train("--resume", str(only_run(tmp_path / f"r{seed}")), "--epochs", "6", "--json")
        summary = json.loads(result.stdout)
        assert summary["status"] == "finished" and summary["epochs"] == 6
        resumed.append(summary["test_accuracy"])
    # Loose on purpose: after 6 epochs single rram runs spread by ~0.035 (clock-seeded noise), and one
    # run in ~30 falls 0.1 below the rest (0.739 vs 0.839 seen); a broken restore (lost scale, reset
    # devices) falls to chance level.
    assert min(resumed) > min(whole) - 0.2, (whole, resumed)
    assert abs(np.mean(resumed) - np.mean(whole)) < 0.1, (whole, resumed)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_interrupts_and_resume_completes(tmp_path, signum):
    proc = subprocess.Popen([sys.executable, str(CLI), "train", "--device", "exact", "--epochs", "5000",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        dirs = [p for p in tmp_path.iterdir() if (p / "summary.json").exists()]
        if dirs and json.loads((dirs[0] / "summary.json").read_text())["epochs"] >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    run_dir = only_run(tmp_path)
    epochs = [line for line in err.splitlines() if re.match(r"bp on exact: epoch \d+/5000 ", line)]
    lines = [line for line in err.splitlines() if line.strip() and line not in epochs]
    assert proc.returncode == 128 + signum
    assert len(lines) == 1 and f"train --resume {run_dir}" in lines[0], err
    assert len(epochs) >= 2  # off a terminal: one plain line per epoch
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["seed"] == 0 and summary["device"] == "exact"
    done = summary["epochs"]
    result = train("--resume", str(run_dir), "--epochs", str(done + 2), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "finished"
    epochs = [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [0] + [e for e in range(1, done + 3) for _ in (0, 1)]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_run_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert train("--device", "exact", "--epochs", "1", "--keep-best", "--out", str(tmp_path)).exit_code == 0
    finally:
        os.umask(old)
    run = only_run(tmp_path)
    files = [f for f in run.iterdir() if f.name not in (".lock", "tensorboard")]
    assert {f.name for f in files} == {"config.json", "metrics.csv", "summary.json", "checkpoint.npz", "checkpoint-best.npz"}
    events = list((run / "tensorboard").iterdir())
    assert len(events) == 1
    for f in files + events:
        assert stat.S_IMODE(f.stat().st_mode) == mode, f
    assert stat.S_IMODE((run / "tensorboard").stat().st_mode) == 0o777 & ~umask


def test_keep_best_and_json_of_a_diverged_run(tmp_path):
    result = train("--device", "exact", "--epochs", "3", "--keep-best", "--out", str(tmp_path / "a"), "--json")
    summary = json.loads(result.stdout)
    assert 1 <= summary["best_epoch"] <= 3 and summary["best_test_accuracy"] >= summary["test_accuracy"]
    result = train("--device", "exact", "--lr", "1e4", "--loss", "mse", "--epochs", "3", "--out", str(tmp_path / "b"), "--json")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["status"] == "diverged" and "epoch 1" in summary["error"]
    assert (summary["dataset"], summary["model"], summary["device"], summary["rule"], summary["seed"]) == (
        "digits", "mlp:64-512-10", "exact", "bp", 0)
    assert train("--resume", summary["run_dir"], "--epochs", "4").exit_code == 2


def test_validation_split_selects_the_best_checkpoint(tmp_path):
    import pandas as pd

    result = train("--device", "exact", "--epochs", "3", "--keep-best", "--data-set", "validation=0.2",
                   "--out", str(tmp_path), "--json")
    summary = json.loads(result.stdout)
    metrics = pd.read_csv(Path(summary["run_dir"]) / "metrics.csv")
    val, test = metrics[metrics.split == "val"], metrics[metrics.split == "test"]
    assert list(val.epoch) == list(test.epoch) == [0, 1, 2, 3]
    best = val.accuracy.iloc[1:].idxmax()
    assert summary["best_epoch"] == metrics.epoch[best] and summary["best_val_accuracy"] == metrics.accuracy[best]
    assert summary["test_accuracy_at_best"] == test[test.epoch == summary["best_epoch"]].accuracy.item()
    assert (Path(summary["run_dir"]) / "checkpoint-best.npz").is_file()
    from hilt.data import load_dataset

    full, held = load_dataset("digits"), load_dataset("digits", ["validation=0.2"], seed=0)
    assert (len(held.x_train), len(held.x_val)) == (1150, 287)
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    assert rows(held.x_train) | rows(held.x_val) == rows(full.x_train) and not rows(held.x_train) & rows(held.x_val)
    assert not np.array_equal(load_dataset("digits", ["validation=0.2"], seed=1).x_val, held.x_val)
    bad = train("--device", "exact", "--data-set", "validation=1.5", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "validation=1.5: expected a fraction in (0, 1)" in bad.output


def test_run_folder_is_printed_whole_and_markup_is_text(tmp_path):
    out = tmp_path / "a-rather-long-folder-name-[exp1]" / "[bold]runs"
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "1", "--out", str(out)],
                           env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    run_dir = only_run(out)
    assert f"run folder: {run_dir}" in result.stdout.splitlines()


def test_large_seed_derives_a_32_bit_device_seed(tmp_path):
    result = train("--device", "rram", "--epochs", "1", "--seed", str(2**32), "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    config = json.loads((only_run(tmp_path) / "config.json").read_text())
    assert config["seed"] == 2**32 and 1 <= config["device_seed"] < 2**32
