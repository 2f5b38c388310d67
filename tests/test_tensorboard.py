"""Every run writes a TensorBoard event file (experiments/run/events.py), read back here with
TensorBoard's own reader."""

import json
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hilt.cli import app
from tests.helpers import runner


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator


def train(tmp_path, *extra) -> Path:
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "2", "--out", str(tmp_path), "--json", *extra])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


def test_a_run_logs_its_metrics_costs_and_settings(tmp_path):
    run_dir = train(tmp_path, "--lr", "0.03")
    log, metrics = events(run_dir), pd.read_csv(run_dir / "metrics.csv")
    test = metrics[metrics.split == "test"]
    scalars = log.Scalars("test/accuracy")
    assert [e.step for e in scalars] == list(test.epoch)
    assert [e.value for e in scalars] == pytest.approx(list(test.accuracy))
    train_rows = metrics[metrics.split == "train"]
    assert [e.value for e in log.Scalars("train/loss")] == pytest.approx(list(train_rows.loss))
    assert "train/digital_macs" in log.Tags()["scalars"] and "train/energy_j" in log.Tags()["scalars"]
    # the hparams view: the settings of the session and its final metrics
    start = log.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    from tensorboard.plugins.hparams import plugin_data_pb2

    info = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info
    assert info.hparams["rule"].string_value == "bp" and info.hparams["lr"].number_value == pytest.approx(0.03)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert log.Scalars("hparams/test_accuracy")[-1].value == pytest.approx(summary["test_accuracy"])


def test_resume_continues_the_log_and_the_flag_turns_it_off(tmp_path):
    run_dir = train(tmp_path)
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert [e.step for e in events(run_dir).Scalars("test/accuracy")] == [0, 1, 2, 3]  # each epoch once
    assert len(list((run_dir / "tensorboard").iterdir())) == 2  # the resumed part's file beside the first
    quiet = train(tmp_path / "quiet", "--no-tensorboard")
    assert not (quiet / "tensorboard").exists()
