"""The command line: bad input is one clear line and exit 2; runs write their files."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hilt.cli import app
from hilt.errors import HiltError
from tests.helpers import message_lines, runner



def run(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--device", "nope"], "unknown device 'nope'; allowed:"),
        (["--rule", "nope"], "unknown rule 'nope'; allowed: bp"),
        (["--dataset", "nope"], "unknown dataset 'nope'; allowed: digits, rhm"),
        (["--model", "resnet"], "unknown model 'resnet'; allowed forms:"),
        (["--model", "mlp:10-5-10"], "must start with the input size 64"),
        (["--set", "foo=1"], "unknown key 'foo'; allowed:"),
        (["--set", "dw_min=2"], "dw_min=2: out of range"),
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--lr", "-0.1"], "--lr must be a finite number > 0"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--device", "rram", "--optimizer", "adam"], "apply to --device exact only"),
        (["--loss", "hinge"], "unknown loss 'hinge'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run("train", "--out", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing written for a refused run


def test_train_json_writes_run_files(tmp_path):
    result = run("train", "--device", "exact", "--epochs", "2", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("test_accuracy", "test_accuracy_exact_readout", "epochs", "wall_time_s", "run_dir"):
        assert key in summary
    run_dir = tmp_path / summary["run_dir"].split("/")[-1]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 0 and "numpy" in config["versions"] and config["device"] == "exact"
    assert (config["model"], config["batch_size"]) == ("mlp:64-512-10", 10)  # the digits recipe, recorded
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics[metrics.split == "train"].epoch) == [1, 2]
    assert list(metrics[metrics.split == "test"].epoch) == [0, 1, 2]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_same_seed_twice_on_exact_gives_identical_metrics(tmp_path):
    outs = []
    for i in range(2):
        result = run("train", "--device", "exact", "--epochs", "3", "--seed", "7", "--out", str(tmp_path / str(i)), "--json")
        outs.append((tmp_path / str(i)).glob("*/metrics.csv").__next__().read_bytes())
    assert outs[0] == outs[1]
    other = run("train", "--device", "exact", "--epochs", "3", "--seed", "8", "--out", str(tmp_path / "x"), "--json")
    assert other.exit_code == 0
    assert (tmp_path / "x").glob("*/metrics.csv").__next__().read_bytes() != outs[0]


def test_devices_and_rules_listings():
    """`devices` lists every preset and NeuroSim device with its description, every update algorithm
    with its meaning and every --set key; `rules` every rule with its description and options."""
    from hilt.devices.neurosim import NEUROSIM_DEVICES
    from hilt.devices.presets import PARAMS, PRESETS
    from hilt.devices.updates import UPDATES
    from hilt.rules import BUILTIN, resolve

    wide = {"COLUMNS": "2000"}  # one table row per line
    result = runner.invoke(app, ["devices"], env=wide)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()

    def row(name, text):
        return any(f" {name} " in line and text in line for line in lines)

    missing = [n for n, (_, d) in {**PRESETS, **NEUROSIM_DEVICES}.items() if not row(n, d)]
    missing += [n for n, u in UPDATES.items() if not row(n, u.doc)]
    missing += [k for k, p in PARAMS.items() if not row(k, p.doc)]
    assert missing == []
    one = run("devices", "rram", "--set", "adc_bits=6")
    assert one.exit_code == 0 and json.loads(one.stdout)["forward_io"]["adc_bits"] == 6
    assert run("devices", "nope").exit_code == 2
    rules = runner.invoke(app, ["rules"], env=wide)
    assert rules.exit_code == 0
    lines = rules.stdout.splitlines()
    for name in BUILTIN:
        info = resolve(name)
        options = ", ".join(f"{k}={o.default}" for k, o in info.options.items())
        assert row(name, info.description) and row(name, options), name


def test_divergence_is_reported_and_files_are_kept(tmp_path):
    result = run("train", "--device", "exact", "--lr", "1e4", "--loss", "mse", "--epochs", "3", "--out", str(tmp_path))
    assert result.exit_code == 3  # diverged: its own code, not bad input's 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "training diverged at epoch 1, step" in lines[0]
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1  # the epoch-0 evaluation survives
    assert (run_dir / "config.json").exists()


@pytest.mark.parametrize("args", [["train", "--epochs", "abc"], ["train", "--no-such-option"], ["no-such-command"]])
def test_click_usage_errors_are_one_line_and_exit_2(args):
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    proc = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "--help" in lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("keep me")
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--seed", "-1"], "--seed must be a whole number >= 0"),
        (["align", "--check", "thm31", "--seed", "-1"], "align --seed must be a whole number >= 0"),
        (["train", "--out", "{file}"], "is a file"),
        (["train", "--out", "{file}/runs"], "lies under a file"),
        (["train", "--out", "/proc/hilt-runs"], "cannot make this folder"),
        (["train", "--dataset", "rhm", "--data-set", "test_size=0"], "test_size must be >= 1"),
        (["train", "--dataset", "rhm", "--data-set", "train_size=0"], "train_size must be >= 1"),
        (["train", "--dataset", "rhm", "--data-set", "v=1", "--data-set", "m=1", "--data-set", "n_c=1"], "v and n_c must be >= 2"),
        (["train", "--dataset", "rhm", "--data-set", "grammar_seed=-1"], "grammar_seed must be >= 0"),
        (["train", "--dataset", "rhm", "--data-set", "L=30"], "GiB of memory; this machine has"),
        (["train", "--dataset", "rhm", "--data-set", "L=1000000000"], "far more than any memory holds"),
        (["train", "--model", "mlp:64-100000000-10"], "7,500,000,010 weights) with batches of 10 (and of 500 to evaluate) would need about"),
        (["train", "--model", "mlp:64-32-10@1.2.3"], "unknown model 'mlp:64-32-10@1.2.3'"),
        (["train", "--device", "[/x]"], "unknown device '[/x]'"),
        (["train", "--device", "exact", "--weight-decay", "nan"], "--weight-decay must be a finite number >= 0"),
        (["train", "--device", "exact", "--momentum", "nan"], "--momentum must be in [0, 1)"),
        (["train", "--device", "ideal", "--set", "update_bl=5"], "update_bl would be ignored"),
        (["train", "--set", "dw_min=0.1", "--set", "dw_min=0.2"], "--set dw_min is given twice"),
        (["train", "--dataset", "rhm", "--data-set", "L=2", "--data-set", "L=3"], "--data-set L is given twice"),
        (["train", "--rule", "dp", "--passes", "1000000"], "--passes must be in [1, 100]"),
        (["train", "--rule", "dp", "--schedule", "fw99999999999"], "--passes must be in [1, 100]"),
        (["devices", "--set", "foo=1"], "devices --set/--update needs a device name"),
        (["train", "--update", "adam"], "--update adam: unknown update algorithm; allowed: sgd, summed, mp"),
        (["train", "--device", "exact", "--update", "summed"], "device 'exact' is the float path"),
        (["train", "--device", "ideal", "--update", "mp"], "no device for mp to wrap; allowed there: sgd, summed"),
        (["train", "--device", "rram-mp", "--update", "ttv2"], "use --device rram --update ttv2"),
        (["train", "--update", "mp", "--set", "fast_lr=0.1"], "--set fast_lr: a parameter of --update tt, ttv2"),
        (["train", "--set", "transfer_every=2"], "not of sgd"),
        (["sweep", "--grid", "update=sgd,nope"], "--grid update nope: unknown update algorithm"),
        (["bench", "--steps", "0"], "--steps must be >= 1"),
        (["bench", "--lr", "0"], "--lr must be a finite number > 0"),
        (["bench", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["bench", "--model", "resnet"], "--model 'resnet': the benchmarks take an MLP"),
        (["bench", "--vgg", "vgg6", "--image-size", "0"], "--image-size must be >= 1"),
        (["bench", "--vgg", "vgg7"], "unknown model 'vgg7'"),
        (["train", "--dataset", "digits", "--model", "cnn1d:4"], "needs 1-D signals (C, L)"),
        (["train", "--dataset", "digits", "--model", "vgg16"], "too many pooling stages for (1, 8, 8) inputs"),
        (["train", "--lr-schedule", "cosine"], "--lr-schedule 'cosine': expected constant | warmup-cosine"),
        (["train", "--recipe", "bp-vgg16-cifar10", "--resume", "{file}"], "leave out --recipe"),
        (["recipes", "nope"], "unknown recipe 'nope'"),
    ],
)
def test_every_bad_input_is_one_line_and_exit_2(tmp_path, a_file, args, message):
    args = [a.replace("{file}", str(a_file)) for a in args]
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(tmp_path / "runs")]
    result = run(*args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() and a_file.read_text() == "keep me"


@pytest.mark.parametrize("command", [["train", "--device", "exact"], ["align", "--check", "thm31"], ["rules"], ["devices"],
                                     ["report", "."], ["bench", "--steps", "1"], ["devices", "fit", "x.csv"]])
def test_hilt_xp_is_checked_for_every_command(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HILT_XP", "fortran")
    result = run(*command)
    assert result.exit_code == 2 and message_lines(result.stderr) == ["error: HILT_XP=fortran: unknown array backend; "
                                                                      "allowed: numpy, cupy, auto"], result.output
    monkeypatch.setenv("HILT_XP", "cupy")
    result = run(*command)
    assert result.exit_code == 2 and "HILT_XP=cupy: CuPy or a CUDA GPU is not available" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_hilt_xp_cupy_is_for_the_exact_path(tmp_path, monkeypatch):
    from hilt.analog import backend

    monkeypatch.setenv("HILT_XP", "cupy")
    with pytest.raises(HiltError, match="HILT_XP=cupy: analog devices run on aihwkit's CPU tiles"):
        backend.select(analog=True)


def test_bench_of_a_conv_net_against_torch():
    result = run("bench", "--vgg", "vgg6@0.0625", "--image-size", "16", "--batch-size", "2", "--steps", "1", "--json")
    assert result.exit_code == 0, result.output
    (r,) = json.loads(result.stdout)
    assert r["hilt_ms"] > 0 and r["reference_ms"] > 0 and r["extra"]["backend"] == "numpy"
    assert r["extra"]["hilt_peak_mib"] > 0 and r["reference"].startswith("PyTorch CPU")
    ssl = run("bench", "--vgg", "vgg6@0.0625", "--image-size", "16", "--batch-size", "2", "--steps", "1",
              "--rule", "clapp_pp", "--json")
    assert ssl.exit_code == 0, ssl.output
    assert "bp on the 4 views + readout" in json.loads(ssl.stdout)[0]["reference"]


def test_the_distribution_installs_one_import_name(tmp_path):
    """Only `hilt` is importable from the installed distribution (no top-level analog, data, ...)."""
    from importlib.metadata import distribution

    assert distribution("hilt").read_text("top_level.txt").split() == ["hilt"]
    code = ("import importlib.util as u, hilt.analog, hilt.cli; "
            "print([n for n in ('analog', 'cli', 'data', 'devices', 'experiments', 'rules') if u.find_spec(n)])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_sizes_are_estimated_before_any_work(tmp_path, monkeypatch):
    """A model's weights and a batch's working arrays (im2col patches, activations: measured 0.25-6.2
    float32 values per (input + output) of every weight application) are estimated before data or
    weights are made; bench keeps a fixed pool of input batches, so its memory does not grow with
    --steps and its inputs are estimated too."""
    import hilt.errors

    monkeypatch.setattr(hilt.errors, "available_memory", lambda: 2**30)
    ok = run("train", "--device", "exact", "--model", "cnn:500-10", "--epochs", "1", "--out", str(tmp_path / "ok"))
    assert ok.exit_code == 0, ok.output  # batches of 10, evaluation batches of 500: about 0.5 GiB
    for args, what in ((["train", "--device", "exact", "--model", "cnn:500-10", "--batch-size", "1024", "--out", str(tmp_path / "no")],
                        "model cnn:500-10 (50,420 weights) with batches of 1024 (and of 500 to evaluate) would need about"),
                       # bench's cases run in fresh processes, which see the machine's real memory
                       (["bench", "--batch-size", "1000000000", "--steps", "1"], "model mlp:64-256-10 (19,210 weights) with batches of 1000000000")):
        result = run(*args)
        assert result.exit_code == 2 and message_lines(result.stderr)[0].startswith(f"error: {what}"), result.output
    assert not (tmp_path / "no").exists()
