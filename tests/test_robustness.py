"""robustness: a finished run's weights on aihwkit inference tiles under non-idealities.

aihwkit's noise cannot be seeded from Python (it is seeded from the clock), and a digits MLP's accuracy moves by less
than its draw-to-draw spread under most of these conditions, so the effect of each knob is
checked where it is large: on the outputs of one inference crossbar.
"""

import json

import numpy as np
import pytest

from hilt.analog import backend
from hilt.analog.inference_crossbar import InferenceCrossbar
from hilt.cli import app
from hilt.devices.inference import inference_rpu_config
from hilt.experiments.studies.robustness import CONDITIONS, YEAR, robustness, summary_table
from tests.helpers import runner



@pytest.mark.slow
def test_every_condition_is_read_over_every_draw(tmp_path):
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "3", "--out", str(tmp_path), "--json"])
    run_dir = json.loads(result.stdout)["run_dir"]
    rows = robustness(run_dir, draws=2)
    assert len(rows) == 1 + 2 * len(CONDITIONS)
    table = summary_table(rows)
    assert [(r["family"], r["value"]) for r in table[1:]] == [(f, v) for f, v, *_ in CONDITIONS]
    assert table[0]["mean"] > 0.85 and all(r["mean"] > 0.5 and r["draws"] == 2 for r in table[1:]), table
    out = tmp_path / run_dir.split("/")[-1] / "robustness"
    assert len((out / "robustness.csv").read_text().splitlines()) == 1 + len(rows)
    assert (out / "robustness.png").stat().st_size > 10_000


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    W = rng.uniform(-0.5, 0.5, (10, 20)).astype(np.float32)
    x = rng.uniform(-1, 1, (200, 20)).astype(np.float32)
    return W, x, x @ W.T


def programmed(W, stuck=0.0, **options):
    crossbar = InferenceCrossbar(*W.shape, False, inference_rpu_config(**options), stuck, np.random.default_rng(1))
    crossbar.program(W)
    crossbar.drift(1.0)
    return crossbar


def read(crossbar, x):
    return backend.to_numpy(crossbar.forward(x))


def test_read_noise_spreads_repeated_reads(case):
    W, x, _ = case
    for noise, low, high in ((0.0, 0.0, 1e-4), (0.2, 0.03, 0.3)):
        crossbar = programmed(W, read_noise=noise)
        spread = np.stack([read(crossbar, x[:1]) for _ in range(100)]).std(axis=0).mean()
        assert low <= spread <= high, (noise, spread)


def test_programming_noise_adc_and_stuck_devices_move_outputs_away_from_exact(case):
    W, x, exact = case
    error = {name: np.abs(read(programmed(W, read_noise=0.0, **options), x) - exact).mean() / np.abs(exact).mean()
             for name, options in {"programming": {}, "adc4": {"adc_bits": 4}, "stuck": {"stuck": 0.3}}.items()}
    assert 0.01 < error["programming"] < 0.2, error
    assert error["adc4"] > 2 * error["programming"] and error["stuck"] > 3 * error["programming"], error


def test_drift_compensation_keeps_the_output_scale_after_a_year(case):
    W, x, _ = case
    for compensated, low, high in ((True, 0.9, 1.1), (False, 0.2, 0.8)):
        crossbar = programmed(W, drift_compensation=compensated)
        after_1s = np.abs(read(crossbar, x)).mean()
        crossbar.drift(YEAR)
        assert low < np.abs(read(crossbar, x)).mean() / after_1s < high, compensated


def test_robustness_needs_a_finished_run(tmp_path):
    result = runner.invoke(app, ["robustness", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished run folder" in result.stderr
