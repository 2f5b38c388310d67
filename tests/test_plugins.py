"""Rules of your own (rules/registry.py): from a file, a module or an installed plug-in; their
options, their prediction, resuming their runs, and one line for every bad plug-in. The example
rule, feedback alignment (examples/feedback_alignment.py), is checked against torch autograd."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hilt.cli import app
from hilt.rules import make_rule
from tests.helpers import assert_same_weights, assert_step_is_gradient, network, runner

ROOT = Path(__file__).resolve().parents[1]
FA = f"{ROOT / 'examples' / 'feedback_alignment.py'}:FeedbackAlignment"

PLUGIN = '''
from typing import Annotated

from hilt.rules.bp import Backprop


class Scaled(Backprop):
    """bp with its error scaled by a factor (a plug-in for the tests)."""

    def __init__(self, factor: Annotated[float, "error scale"] = 1.0, loss: str = "ce"):
        super().__init__(loss)
        self.factor = factor

    def params(self):
        return {"factor": self.factor, "loss": self.loss_name}

    def signals(self, net, x, y):
        signals = super().signals(net, x, y)
        return signals._replace(blocks=[(self.factor * g, cache) for g, cache in signals.blocks])


class Reversed(Backprop):
    """bp that predicts the class with the smallest output."""

    def predict(self, net, x):
        return -net.forward(x)
'''


def train(*args, out):
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "1", "--out", str(out), "--json", *args])
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


class FALinear(torch.autograd.Function):
    """A linear layer whose backward sends the error down through B instead of W^T."""

    @staticmethod
    def forward(ctx, h, W, B):
        ctx.save_for_backward(h, B)
        return h @ W[:, :-1].T + W[:, -1]

    @staticmethod
    def backward(ctx, g):
        h, B = ctx.saved_tensors
        return g @ B.T, torch.cat([g.T @ h, g.sum(0)[:, None]], 1), None


def test_feedback_alignment_update_equals_autograd_with_fixed_feedback(rng):
    rule = make_rule(FA, feedback_scale=0.7)
    net = network("mlp:12-9-7-5", (12,), rule)
    x, y = rng.normal(size=(6, 12)).astype(np.float32), rng.integers(0, 5, 6)
    W = [torch.tensor(np.asarray(c.weights()), requires_grad=True) for c in net.crossbars()]
    B = {k: torch.tensor(np.asarray(net.aux[f"B{k}"].weights())) for k in (2, 3)}
    assert B[2].shape == (9, 7) and B[3].shape == (7, 5)
    assert float(B[2].abs().max()) <= 0.7 / np.sqrt(7)
    h = torch.relu(torch.from_numpy(x) @ W[0][:, :-1].T + W[0][:, -1])
    h = torch.relu(FALinear.apply(h, W[1], B[2]))
    out = FALinear.apply(h, W[2], B[3])
    F.cross_entropy(out, torch.from_numpy(y)).backward()
    before = [w.detach().numpy().copy() for w in W]
    rule.step(net, x, y, lr=0.1)
    assert_step_is_gradient(net, before, [w.grad.numpy() for w in W], 0.1)
    for k in (2, 3):  # the feedback crossbars never move
        np.testing.assert_array_equal(np.asarray(net.aux[f"B{k}"].weights()), B[k].numpy())


@pytest.mark.parametrize("device", ["exact", "rram"])
def test_feedback_alignment_from_its_file_trains_on_both_paths(tmp_path, device):
    result = runner.invoke(app, ["train", "--rule", "examples/feedback_alignment.py:FeedbackAlignment", "--device",
                                 device, "--epochs", "1", "--rule-opt", "feedback_scale=0.8", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and summary["test_accuracy"] > 0.4
    assert summary["costs"]["train"]["transposed_reads"] == 0  # the error goes down by forward reads of B
    config = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert config["rule_options"] == {"feedback_scale": 0.8, "loss": "ce"}
    assert config["rule_source"]["sha256"] and Path(config["rule_source"]["path"]) == ROOT / "examples" / "feedback_alignment.py"
    assert Path(summary["run_dir"]).name.endswith(f"-{device}-FeedbackAlignment-s0")


def test_ideal_device_with_perfect_io_reproduces_exact_for_the_plugin(rng):
    x, y = rng.normal(size=(8, 12)).astype(np.float32), rng.integers(0, 5, 8)
    nets = {}
    for device in ("exact", "ideal"):
        rule = make_rule(FA)
        nets[device] = network("mlp:12-9-5", (12,), rule, device=device)
        for _ in range(3):
            rule.step(nets[device], x, y, lr=0.05)
    assert_same_weights(nets["exact"], nets["ideal"], atol=2e-5)


def test_a_plugin_from_a_module_and_its_options_everywhere(tmp_path, monkeypatch):
    (tmp_path / "my_rules.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    result, summary = train("--rule", "my_rules:Scaled", "--rule-opt", "factor=0.5", out=tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert json.loads((Path(summary["run_dir"]) / "config.json").read_text())["rule_options"]["factor"] == 0.5
    shown = runner.invoke(app, ["rules", "my_rules:Scaled"])
    assert shown.exit_code == 0 and "factor" in shown.stdout and "error scale" in shown.stdout
    result = runner.invoke(app, ["sweep", "--device", "exact", "--rule", "my_rules:Scaled", "--grid", "factor=0.5,2",
                                 "--epochs", "1", "--out", str(tmp_path / "sweeps"), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["factor"] for row in json.loads(result.stdout)] == [0.5, 2.0]
    result, _ = train("--rule", "my_rules:Scaled", "--rule-opt", "factor=abc", out=tmp_path / "runs")
    assert result.exit_code == 2 and "option factor=abc: expected a number" in result.stderr
    result, _ = train("--rule", "my_rules:Scaled", "--rule-opt", "nope=1", out=tmp_path / "runs")
    assert result.exit_code == 2 and "takes no option 'nope' (its options: factor, loss)" in result.stderr


def test_an_installed_plugin_is_found_by_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "hiltplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hiltplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hilt.rules]\nscaled_bp = hiltplug_rules:Scaled\n")
    (site / "hiltplug_rules.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    listing = runner.invoke(app, ["rules"])
    assert listing.exit_code == 0 and "scaled_bp" in listing.stdout and "hiltplug" in listing.stdout
    result, summary = train("--rule", "scaled_bp", "--rule-opt", "factor=2", out=tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert Path(summary["run_dir"]).name.endswith("-exact-scaled_bp-s0")
    # the same plug-in named like a built-in: refused, not silently shadowed
    (info / "entry_points.txt").write_text("[hilt.rules]\nbp = hiltplug_rules:Scaled\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # a new sys.path: the entry points are read again
    result, _ = train("--rule", "bp", out=tmp_path / "runs")
    assert result.exit_code == 2 and "its name 'bp' clashes with a built-in rule" in result.stderr


BAD = {
    "missing file": ("{tmp}/nope.py:Rule", "no such file"),
    "missing class": ("{tmp}/ok.py:Nope", "has no 'Nope'"),
    "not a rule": ("{tmp}/ok.py:NotARule", "NotARule is not a subclass of hilt.rules.Rule"),
    "import raises": ("{tmp}/raises.py:R", "importing {tmp}/raises.py raised ZeroDivisionError: division by zero (traceback in"),
    "no type": ("{tmp}/ok.py:NoType", "option 'alpha' needs a type"),
    "no default": ("{tmp}/ok.py:NoDefault", "option 'alpha' needs a default value"),
    "missing module": ("no_such_module_here:R", "no module named 'no_such_module_here'"),
    "not a name": ("what is this", "unknown rule 'what is this'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_bad_plugin_is_one_line_and_exit_2(tmp_path, case):
    (tmp_path / "ok.py").write_text(
        "from hilt.rules import Rule\n"
        "class NotARule:\n    pass\n"
        "class NoType(Rule):\n    def __init__(self, alpha=0.5):\n        super().__init__()\n"
        "class NoDefault(Rule):\n    def __init__(self, alpha: float):\n        super().__init__()\n")
    (tmp_path / "raises.py").write_text("x = 1 / 0\n")
    spec, message = (s.format(tmp=tmp_path) for s in BAD[case])
    result, _ = train("--rule", spec, out=tmp_path / "runs")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    if case == "import raises":
        log = Path(lines[0].split("traceback in ")[1].rstrip(")"))
        assert "ZeroDivisionError" in log.read_text() and "raises.py" in log.read_text()


def test_resume_refuses_a_changed_rule_source_unless_allowed(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(PLUGIN)
    result, summary = train("--rule", f"{source}:Scaled", out=tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run_dir = summary["run_dir"]
    resume = ["train", "--resume", run_dir, "--epochs", "2", "--json"]
    source.write_text(PLUGIN + "\n# edited\n")
    result = runner.invoke(app, resume)
    assert result.exit_code == 2 and "is not the code the run started with" in result.stderr
    assert "--allow-rule-change" in result.stderr
    result = runner.invoke(app, [*resume, "--allow-rule-change"])
    assert result.exit_code == 0 and json.loads(result.stdout)["epochs"] == 2
    # moved: named anew on resume, same source
    moved = tmp_path / "moved.py"
    moved.write_text(source.read_text())
    source.unlink()
    result = runner.invoke(app, ["train", "--resume", run_dir, "--epochs", "3"])
    assert result.exit_code == 2 and "cannot be imported" in result.stderr and "--rule PATH.py:Class" in result.stderr
    result = runner.invoke(app, ["train", "--resume", run_dir, "--epochs", "3", "--rule", f"{moved}:Scaled",
                                 "--allow-rule-change", "--json"])
    assert result.exit_code == 0, result.output


def test_a_rule_is_scored_by_its_own_predict_in_evaluation_and_robustness(tmp_path):
    from hilt.experiments.studies.robustness import robustness

    (tmp_path / "mine.py").write_text(PLUGIN)
    result, summary = train("--rule", f"{tmp_path / 'mine.py'}:Reversed", "--epochs", "3", out=tmp_path / "runs")
    assert result.exit_code == 0, result.output
    # trained as bp (high training accuracy), scored by its predict: the class with the smallest output
    assert summary["train_accuracy"] > 0.8 and summary["test_accuracy"] < 0.1
    rows = robustness(summary["run_dir"], draws=1)
    assert rows[0]["accuracy"] == summary["test_accuracy"]
    assert max(r["accuracy"] for r in rows) < 0.25


def test_every_rule_records_its_options_as_it_uses_them_and_is_rebuilt_from_them():
    """config.json keeps one record of a rule's options, rule.params(): the declared options, with
    their defaults resolved, from which the same rule is made again on resume."""
    from hilt.rules import BUILTIN, resolve

    for spec in [*BUILTIN, FA]:
        info = resolve(spec)
        params = info.make().params()
        assert set(params) == set(info.options), spec
        assert info.make(**params).params() == params, spec
    assert resolve("dp").make(schedule="fw3").params()["passes"] == 3


def test_resume_compares_rule_opt_text_with_the_recorded_option(tmp_path, monkeypatch):
    (tmp_path / "my_rules2.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    result, summary = train("--rule", "my_rules2:Scaled", "--rule-opt", "factor=0.5", out=tmp_path / "runs")
    assert result.exit_code == 0, result.output
    same = runner.invoke(app, ["train", "--resume", summary["run_dir"], "--epochs", "2", "--rule-opt", "factor=0.5"])
    assert same.exit_code == 0, same.output
    other = runner.invoke(app, ["train", "--resume", summary["run_dir"], "--epochs", "3", "--rule-opt", "factor=2"])
    assert other.exit_code == 2 and "--rule-opt factor 2.0 differs from the run's 0.5" in other.stderr
