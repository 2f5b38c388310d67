"""Self-supervised training end to end: the ideal analog path reproduces exact for the CLAPP
rules, runs on rram with the probe and robustness, and refused supervised options."""

import json

import numpy as np
import pytest

from hilt.cli import app
from hilt.data.pairs import shifted_views
from hilt.rules import make_rule
from tests.helpers import network, runner





@pytest.mark.parametrize("name", ["clapp_pp", "clapp_pp_both", "clapp_dfa", "clapp_pc", "bp_infonce"])
def test_ideal_analog_path_reproduces_exact_for_clapp_steps(rng, name):
    rule = make_rule(name)
    model, shape = "mlp:12-10-8", (12,)
    exact = network(model, shape, rule, readout=False)
    ideal = network(model, shape, rule, device="ideal", readout=False)
    for _ in range(2):
        x = rng.normal(size=(4, 1, 1, 12)).astype(np.float32)
        pairs = shifted_views(x, np.arange(4), np.random.default_rng(0))
        pairs.first, pairs.second = pairs.first.reshape(4, 12), pairs.second.reshape(4, 12)
        m_exact, m_ideal = rule.step(exact, pairs, None, 0.05), rule.step(ideal, pairs, None, 0.05)
        assert m_exact["loss_sum"] == pytest.approx(m_ideal["loss_sum"], rel=1e-5)
    for a, b in zip([*exact.weights(), *(c.weights() for c in exact.aux.values())],
                    [*ideal.weights(), *(c.weights() for c in ideal.aux.values())]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_ssl_run_on_rram_writes_probe_accuracy_and_joins_robustness(tmp_path):
    result = runner.invoke(app, ["train", "--rule", "clapp_pp", "--device", "rram", "--model", "mlp:64-32-32",
                                 "--epochs", "1", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # aihwkit's noise is unseeded and a 1-epoch 32-wide encoder is noisy: check well above chance (0.1) only
    assert summary["model"] == "mlp:64-32-32" and 0.2 < summary["test_accuracy"] <= 1
    assert len(summary["probe_accuracy_per_layer"]) == 2
    rows = runner.invoke(app, ["robustness", summary["run_dir"], "--draws", "1", "--json"])
    assert rows.exit_code == 0, rows.output
    accuracies = [r["accuracy"] for r in json.loads(rows.stdout)]
    assert all(0 <= a <= 1 for a in accuracies) and np.mean(accuracies) > 0.2


def test_ssl_rules_refuse_supervised_options_and_models(tmp_path):
    result = runner.invoke(app, ["train", "--rule", "clapp_pp", "--loss", "mse", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "rule clapp_pp takes no --loss" in result.stderr
    result = runner.invoke(app, ["train", "--rule", "pc", "--inference-steps", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--inference-steps must be in [1, 1000]" in result.stderr
