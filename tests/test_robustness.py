"""robustness: a finished run's weights on aihwkit inference tiles under non-idealities."""

import json

from typer.testing import CliRunner

from cli import app
from experiments.robustness import robustness, summary_table

runner = CliRunner()


def test_noise_free_is_best_and_read_noise_does_not_help(tmp_path):
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "3", "--out", str(tmp_path), "--json"])
    run_dir = json.loads(result.stdout)["run_dir"]
    table = {(r["family"], r["value"]): r["mean"] for r in summary_table(robustness(run_dir, draws=3))}
    reference = table["none (exact readout)", "-"]
    assert reference > 0.85
    assert all(mean <= reference + 0.01 for mean in table.values()), table
    assert table["read noise", "0.2"] <= table["read noise", "0.0"] + 0.005
    assert table["ADC bits", "4"] <= table["ADC bits", "float"] + 0.005
    assert (tmp_path / run_dir.split("/")[-1] / "robustness" / "robustness.png").stat().st_size > 10_000


def test_robustness_needs_a_finished_run(tmp_path):
    result = runner.invoke(app, ["robustness", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished run folder" in result.stderr
