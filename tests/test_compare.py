"""compare: the same rule on exact and on a device, with alignment and update fidelity."""

import json

import pandas as pd
import pytest

from hilt.cli import app
from hilt.experiments.studies.compare import compare
from hilt.experiments.run.config import TrainConfig
from tests.helpers import runner


def by_path(frame, metric, layer=None):
    part = frame[frame.metric == metric]
    if layer is not None:
        part = part[part.layer == layer]
    return {p: g.sort_values("epoch").value.to_numpy() for p, g in part.groupby("path")}


def test_ideal_device_matches_exact_with_perfect_update_fidelity(tmp_path):
    result = compare(TrainConfig(device="ideal", rule="dp_adjoint", epochs=2, out=str(tmp_path)), every=7)
    frame = pd.read_csv(f"{result['run_dir']}/compare.csv")
    for metric in ("test_accuracy", "test_loss", "train_loss"):
        curves = by_path(frame, metric)
        assert curves["exact"] == pytest.approx(curves["ideal"], abs=1e-5), metric
    for layer in (1, 2):
        assert by_path(frame, "alignment", layer)["exact"] == pytest.approx(by_path(frame, "alignment", layer)["ideal"], abs=1e-5)
        for path in ("exact", "ideal"):
            assert by_path(frame, "cosine", layer)[path] == pytest.approx(1, abs=1e-5)
            assert by_path(frame, "norm_ratio", layer)[path] == pytest.approx(1, abs=1e-4)
    samples = pd.read_csv(f"{result['run_dir']}/fidelity.csv")
    assert sorted(samples.step.unique())[:3] == [1, 8, 15]  # every 7th step, from the first
    assert (tmp_path / result["run_dir"].split("/")[-1] / "compare.png").stat().st_size > 10_000


def test_rram_update_fidelity_is_below_one(tmp_path):
    result = compare(TrainConfig(device="rram", epochs=1, out=str(tmp_path)), every=20)
    frame = pd.read_csv(f"{result['run_dir']}/compare.csv")
    for layer in (1, 2):
        assert by_path(frame, "cosine", layer)["rram"][0] < 0.9
        for metric in ("not_made", "below_one_pulse", "at_bounds"):
            value = by_path(frame, metric, layer)["rram"][0]
            assert 0 <= value <= 1, metric
        assert by_path(frame, "below_one_pulse", layer)["rram"][0] > 0
    assert "not_made" not in set(frame[frame.path == "exact"].metric)  # no pulses on the exact path


def test_compare_cli(tmp_path):
    result = runner.invoke(app, ["compare", "--device", "exact", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "give an analog --device" in result.stderr
    result = runner.invoke(app, ["compare", "--device", "ideal", "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and set(summary["runs"]) == {"exact", "ideal"}


def test_fidelity_on_the_kept_weights_sees_past_rrams_write_noise(tmp_path):
    """ReRAM-ES redraws write noise on every pulsed device: the visible change hides the update,
    the persistent weights show more of it (measured: layer 1 0.018 -> 0.085, layer 2 0.046 -> 0.36)."""
    result = compare(TrainConfig(device="rram", epochs=1, out=str(tmp_path)), every=20)
    frame = pd.read_csv(f"{result['run_dir']}/compare.csv")
    for layer in (1, 2):
        visible, kept = by_path(frame, "cosine", layer)["rram"][0], by_path(frame, "cosine_kept", layer)["rram"][0]
        assert kept > 3 * visible, (layer, visible, kept)
        assert by_path(frame, "cosine_kept", layer)["exact"][0] == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("stop_in", ["exact", "ideal"])
def test_an_interrupted_comparison_resumed_equals_one_never_stopped(tmp_path, stop_in):
    """Ctrl-C after epoch 2 of one half (the run keeps its checkpoint and its fidelity samples), then
    `compare --resume DIR`: the same tables as a comparison that ran straight through (the ideal
    device with perfect IO is deterministic)."""
    cfg = TrainConfig(device="ideal", rule="dp_adjoint", epochs=3, out=str(tmp_path / "straight"))
    straight = compare(cfg, every=7)

    def stop_after_two(path):
        def on_epoch(train_row, test_row):
            if path == stop_in and train_row["epoch"] == 2:
                raise KeyboardInterrupt
        return {"on_epoch": on_epoch}

    stopped = compare(TrainConfig(device="ideal", rule="dp_adjoint", epochs=3, out=str(tmp_path / "stopped")), every=7,
                      on_run=stop_after_two)
    assert stopped["status"] == "interrupted" and stopped["stopped"]["epochs"] == 2
    assert not (tmp_path / "stopped" / stopped["run_dir"] / "compare.csv").exists()
    root = stopped["run_dir"]
    for bad, message in ((["--every", "3"], "--every 3 differs from the comparison's 7"),
                         (["--device", "rram"], "--device rram differs from the run's ideal")):
        result = runner.invoke(app, ["compare", "--resume", root, *bad])
        assert result.exit_code == 2 and message in result.stderr, result.output
    result = runner.invoke(app, ["compare", "--resume", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "not a comparison folder" in result.stderr
    result = runner.invoke(app, ["compare", "--resume", root, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and summary["run_dir"] == root and summary["every"] == 7
    for table in ("compare.csv", "fidelity.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(f"{straight['run_dir']}/{table}"), pd.read_csv(f"{root}/{table}"),
                                      check_exact=False, atol=1e-5, obj=table)
