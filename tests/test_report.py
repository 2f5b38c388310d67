"""report: finished run folders -> a Markdown table of mean ± std over seeds."""

import json

import pytest

from hilt.cli import app
from tests.helpers import runner


def fake_run(root, name, device, seed, acc, status="finished", epochs=30, **settings):
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": "digits", "model": "mlp:64-512-10", "device": device, "rule": "bp", "seed": seed,
              "lr": 0.05, "batch_size": 10, "optimizer": "sgd", "sets": [], "rule_params": {"loss": "ce"}, **settings}
    summary = {"status": status, "epochs": epochs, "test_accuracy": acc, "test_accuracy_exact_readout": acc + 0.01}
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text(json.dumps(summary))


def test_report_groups_finished_runs(tmp_path):
    fake_run(tmp_path, "a", "rram", 0, 0.90)
    fake_run(tmp_path, "b", "rram", 1, 0.94)
    fake_run(tmp_path / "nested", "c", "exact", 0, 0.97)
    fake_run(tmp_path, "d", "rram", 2, 0.10, status="interrupted")  # not counted
    out = tmp_path / "report.md"
    result = runner.invoke(app, ["report", str(tmp_path), "--group-by", "device", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "| device | n | test_accuracy | test_accuracy_exact_readout |",
        "|---|---|---|---|",
        "| exact | 1 | 0.9700 (n=1) | 0.9800 (n=1) |",
        "| rram | 2 | 0.9200 ± 0.0283 | 0.9300 ± 0.0283 |",
    ]
    assert out.read_text() == result.stdout
    assert "left out: 1 interrupted run(s)" in result.stderr


def test_report_never_pools_runs_of_other_settings_silently(tmp_path):
    """By default every setting that differs is a group; with explicit groups the pooled settings
    are named; a damaged run folder is skipped with one line, the others are reported."""
    fake_run(tmp_path, "a", "rram", 0, 0.90, lr=0.05)
    fake_run(tmp_path, "b", "rram", 1, 0.92, lr=0.05)
    fake_run(tmp_path, "c", "rram", 0, 0.50, lr=0.5, epochs=3)
    fake_run(tmp_path, "d", "rram", 1, 0.10, status="diverged", lr=0.5)
    fake_run(tmp_path, "e", "rram", 2, 0.10, lr=0.05)
    (tmp_path / "e" / "summary.json").write_text('{"status": "finished", "test_acc')  # cut mid-write by hand
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "| dataset | device | rule | lr | epochs | n | test_accuracy | test_accuracy_exact_readout |",
        "|---|---|---|---|---|---|---|---|",
        "| digits | rram | bp | 0.05 | 30 | 2 | 0.9100 ± 0.0141 | 0.9200 ± 0.0141 |",
        "| digits | rram | bp | 0.5 | 3 | 1 | 0.5000 (n=1) | 0.5100 (n=1) |",
    ]
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 2 and "e/summary.json: damaged" in notes[0] and "left out: 1 diverged" in notes[1]
    pooled = runner.invoke(app, ["report", str(tmp_path), "--group-by", "device"])
    assert "| rram | 3 |" in pooled.stdout and "pooled inside a group: runs that differ in lr, epochs" in pooled.stderr


def test_report_refuses_unknown_columns_and_empty_folders(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no finished runs under" in result.stderr
    fake_run(tmp_path, "a", "rram", 0, 0.9)
    result = runner.invoke(app, ["report", str(tmp_path), "--group-by", "colour"])
    assert result.exit_code == 2 and "--group-by 'colour': not a setting; allowed: dataset" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--metric", "rule"], "--metric 'rule': not a numeric result column; allowed: test_accuracy"),
    (["--metric", "test_accuracy", "--metric", "test_accuracy"], "a metric is given twice"),
    (["--group-by", ",,"], "--group-by: give column names; allowed: dataset"),
    (["--group-by", "rule,rule"], "a column is given twice"),
    (["--group-by", "test_accuracy"], "--group-by 'test_accuracy': not a setting"),
    (["--plot", "energy.txt"], "an image file ends in .png, .pdf, .svg"),
])
def test_report_options_are_checked(tmp_path, args, message):
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0
    result = runner.invoke(app, ["report", str(tmp_path), *args])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
