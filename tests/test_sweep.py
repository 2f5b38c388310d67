"""sweep: a grid of runs, serial or on Ray, resumable, with a tidy table and plots."""

import inspect
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hilt.cli import app
from tests.helpers import runner

CLI = Path(__file__).resolve().parents[1] / "cli.py"
GRID = ["--device", "exact", "--epochs", "1", "--grid", "lr=0.01,0.05", "--grid", "batch_size=10,20", "--seeds", "2"]


def sweep(*args):
    result = runner.invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    return result


def table(root: Path) -> pd.DataFrame:
    (folder,) = list(root.iterdir())
    return pd.read_csv(folder / "sweep.csv")


@pytest.mark.slow
def test_serial_and_ray_sweeps_give_the_same_table(tmp_path):
    sweep(*GRID, "--out", str(tmp_path / "serial"))
    sweep(*GRID, "--out", str(tmp_path / "ray"), "--jobs", "2")
    serial, ray = table(tmp_path / "serial"), table(tmp_path / "ray")
    assert len(serial) == 8 and set(serial.status) == {"finished"}
    assert list(serial.columns[:3]) == ["lr", "batch_size", "seed"]
    cols = ["lr", "batch_size", "seed", "test_accuracy", "test_accuracy_exact_readout", "train_accuracy"]
    pd.testing.assert_frame_equal(serial[cols], ray[cols])
    # BLAS threads may differ between the driver and Ray workers: losses agree to float rounding
    assert ray.train_loss.to_numpy() == pytest.approx(serial.train_loss.to_numpy(), rel=1e-6)
    (folder,) = list((tmp_path / "serial").iterdir())
    for name in ("sweep.parquet", "acc_vs_lr.png", "acc_vs_batch_size.png", "heatmap.png"):
        assert (folder / name).stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "sweep.parquet")[cols], serial[cols])


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_redoing_finished_points(tmp_path):
    args = ["sweep", "--device", "exact", "--epochs", "40", "--grid", "lr=0.01,0.02,0.03", "--out", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, first = time.time() + 120, None
    while time.time() < deadline and first is None:
        for summary in tmp_path.glob("*/points/lr=0.01-*,seed=0/summary.json"):
            if json.loads(summary.read_text())["status"] == "finished":
                first = summary.parent
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "rerun the same command" in lines[0], err
    kept = (first / "metrics.csv").stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (first / "metrics.csv").stat().st_mtime_ns == kept  # not redone
    rows = table(tmp_path)
    assert len(rows) == 3 and set(rows.status) == {"finished"} and set(rows.epochs) == {40}


@pytest.mark.parametrize("args,message", [
    (["--grid", "colour=1,2"], "--grid: unknown key 'colour'; allowed: dw_min"),
    (["--grid", "lr="], "--grid 'lr=': expected KEY=V1,V2"),
    (["--grid", "lr=0.1", "--grid", "lr=0.2"], "--grid lr is given twice"),
    (["--grid", "lr=0.1,-1"], "--grid point lr=-1: --grid lr must be a finite number > 0 (got -1.0)"),
    (["--grid", "dw_min=2"], "dw_min=2: out of range"),
    (["--grid", "lr=0.1", "--seeds", "0"], "--seeds must be >= 1"),
    (["--grid", "lr=0.1", "--jobs", "0"], "--jobs must be >= 1"),
    ([], "sweep needs at least one --grid"),
])
def test_bad_sweeps_are_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["sweep", "--out", str(tmp_path / "s"), *args])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "s").exists()


def test_every_rule_option_is_a_flag_a_grid_key_and_documented():
    """Rule options are declared once (the rule classes' constructors, with a one-line doc each):
    train's flags and sweep's grid keys follow, damping (a bool) included."""
    from hilt.cli import _train_config
    from hilt.experiments.studies.sweep import Point, point_config, rule_keys
    from hilt.experiments.run.config import TrainConfig
    from hilt.rules import BUILTIN
    from hilt.rules.registry import declared_options

    options = {o.name: o for name, cls in BUILTIN.items() for o in declared_options(cls, name).values()}
    assert all(o.doc.strip() for o in options.values()), [o.name for o in options.values() if not o.doc.strip()]
    assert set(options) == set(rule_keys([]))
    flags = set(inspect.signature(_train_config).parameters)
    assert set(options) <= flags
    cfg = point_config(TrainConfig(rule="dp"), Point((("damping", "true"),), 0))
    assert cfg.rule_options["damping"] is True


def test_a_bool_rule_option_sweeps(tmp_path):
    result = runner.invoke(app, ["sweep", "--device", "exact", "--rule", "dp_adjoint", "--grid", "damping=true,false",
                                 "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["damping"] for row in json.loads(result.stdout)] == [True, False]


def _device_file(path: Path, dw_min: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "hilt-device-1", "name": path.stem, "device": {
        "class": "ConstantStepDevice", "params": {"dw_min": dw_min, "dw_min_std": 0.0, "dw_min_dtod": 0.0,
                                                  "up_down": 0.0, "up_down_dtod": 0.0, "w_min": -1.0, "w_max": 1.0,
                                                  "w_min_dtod": 0.0, "w_max_dtod": 0.0}}}))
    return path


def test_points_and_sweeps_are_named_so_they_cannot_collide_or_escape(tmp_path, monkeypatch):
    """Two device files whose old folder names were the same (a/dev.json, a_dev.json) train as two
    points with their own numbers; a device path with .. keeps the sweep inside --out; a long
    value gives a short name; an edited device file is another sweep."""
    monkeypatch.chdir(tmp_path)
    _device_file(tmp_path / "a" / "dev.json", 0.002)
    _device_file(tmp_path / "a_dev.json", 0.05)
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", "--epochs", "1", "--grid", "device=a/dev.json,a_dev.json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (root,) = out.iterdir()
    rows = table(out)
    assert len(rows) == 2 and len(set(rows.run_dir)) == 2 and rows.test_accuracy.nunique() == 2
    assert len(list((root / "points").iterdir())) == 2
    # an edited device file is another sweep: a folder of its own, or, under the same --name, refused
    named = ["sweep", "--epochs", "1", "--grid", "device=a/dev.json,a_dev.json", "--out", str(out), "--name", "mine"]
    assert runner.invoke(app, named).exit_code == 0
    _device_file(tmp_path / "a_dev.json", 0.01)
    again = runner.invoke(app, named)
    assert again.exit_code == 2 and "device_files" in again.output
    assert runner.invoke(app, named[:-2]).exit_code == 0 and len(list(out.iterdir())) == 3
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.studies.sweep import plan

    deep = tmp_path / "x" / "y"
    escaping = plan(TrainConfig(device=str(tmp_path / "a" / ".." / "a_dev.json"), epochs=1),
                    ["lr=0.01," + "0" * 250 + "1"], 1, deep)
    assert escaping.root.parent == deep and "/" not in escaping.root.name
    assert all(len(escaping.folder(p).name) < 80 for p in escaping.points)


def test_grid_values_with_commas_are_separated_by_semicolons(tmp_path):
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.studies.sweep import plan

    sweep = plan(TrainConfig(epochs=1), ["device=neurosim:nl_ltp=1.0,c2c=0.01;rram", "lr_schedule=warmup-cosine:1,2,0.05,0.01;constant"],
                 1, tmp_path)
    assert sweep.grid == {"device": ["neurosim:nl_ltp=1.0,c2c=0.01", "rram"], "lr_schedule": ["warmup-cosine:1,2,0.05,0.01", "constant"]}
    assert len(sweep.points) == 4 and len({sweep.folder(p) for p in sweep.points}) == 4


@pytest.mark.parametrize("grid, message", [("model=mlp:64-32-10,mlp:64-x-10", "unknown model 'mlp:64-x-10'"),
                                           ("activation=relu,nope", "unknown activation 'nope'"),
                                           ("model=mlp:64-32-10,mlp:32-16-10", "does not fit the data"),
                                           ("model=mlp:64-32-10,mlp:64-100000-10", "would need about")])
def test_every_grid_value_is_checked_before_the_first_point_trains(tmp_path, monkeypatch, grid, message):
    """Values of the wrong form, and values that do not fit the data or the memory (found by the
    fuzz suite: `--grid batch_size=2;1313885` trained point 1, then stopped)."""
    import hilt.errors

    monkeypatch.setattr(hilt.errors, "available_memory", lambda: 2**30)
    result = runner.invoke(app, ["sweep", "--epochs", "1", "--grid", grid, "--out", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert not any(tmp_path.rglob("summary.json"))  # no point trained
