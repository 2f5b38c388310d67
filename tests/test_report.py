"""report: finished run folders -> a Markdown table of mean ± std over seeds."""

import json

from typer.testing import CliRunner

from cli import app


def fake_run(root, name, device, seed, acc, status="finished"):
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": "digits", "model": "mlp:64-512-10", "device": device, "rule": "bp", "seed": seed,
              "lr": 0.05, "batch_size": 10, "optimizer": "sgd", "sets": [], "rule_params": {"loss": "ce"}}
    summary = {"status": status, "epochs": 30, "test_accuracy": acc, "test_accuracy_exact_readout": acc + 0.01}
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text(json.dumps(summary))


def test_report_groups_finished_runs(tmp_path):
    fake_run(tmp_path, "a", "rram", 0, 0.90)
    fake_run(tmp_path, "b", "rram", 1, 0.94)
    fake_run(tmp_path / "nested", "c", "exact", 0, 0.97)
    fake_run(tmp_path, "d", "rram", 2, 0.10, status="interrupted")  # not counted
    out = tmp_path / "report.md"
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--group-by", "device", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "| device | runs | test_accuracy | test_accuracy_exact_readout |",
        "|---|---|---|---|",
        "| exact | 1 | 0.9700 ± 0.0000 | 0.9800 ± 0.0000 |",
        "| rram | 2 | 0.9200 ± 0.0283 | 0.9300 ± 0.0283 |",
    ]
    assert out.read_text() == result.stdout


def test_report_refuses_unknown_columns_and_empty_folders(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no finished runs under" in result.stderr
    fake_run(tmp_path, "a", "rram", 0, 0.9)
    result = runner.invoke(app, ["report", str(tmp_path), "--group-by", "colour"])
    assert result.exit_code == 2 and "unknown column 'colour'; allowed: dataset" in result.stderr
