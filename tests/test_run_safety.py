"""Run folders that can be shared and trusted (issue 9/12): no file that hilt opens runs code, one
writer per folder, every failure ends in a clear status and one line, sweeps know what they hold."""

import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hilt.cli import app
from hilt.experiments.run.files import read_tree, write_tree
from tests.helpers import message_lines, runner

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "cli.py"


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, message_lines(result.stderr)


def exact_run(root: Path, *extra) -> Path:
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "1", "--out", str(root), "--json", *extra])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


class Payload:
    """Unpickling this runs `touch MARKER`: what a crafted file does to plain pickle.load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# 1. No file that hilt opens can run code


def test_a_pickle_checkpoint_is_refused_unopened(tmp_path):
    run_dir, marker = exact_run(tmp_path / "runs"), tmp_path / "owned"
    (run_dir / "checkpoint.npz").unlink()
    (run_dir / "checkpoint.pkl").write_bytes(pickle.dumps({"format": 1, "x": Payload(marker)}))
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2")
    assert result.exit_code == 2 and len(lines) == 1 and "checkpoint.pkl is a checkpoint of an older hilt, a pickle" in lines[0]
    assert not marker.exists()


def test_a_pickle_hidden_in_the_checkpoint_arrays_is_refused(tmp_path):
    """An .npz whose member is an object array (a pickle inside the zip), opened by robustness."""
    run_dir, marker = exact_run(tmp_path / "runs"), tmp_path / "owned"
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    with zipfile.ZipFile(run_dir / "checkpoint.npz", "w") as zf:
        with zf.open("tree.npy", "w") as fh:
            np.lib.format.write_array(fh, evil, allow_pickle=True)
    result, lines = invoke("robustness", run_dir, "--draws", "1")
    assert result.exit_code == 2 and len(lines) == 1 and "checkpoint.npz is damaged or not a hilt checkpoint" in lines[0]
    assert lines[0].startswith("error: robustness ")
    assert not marker.exists()


def test_a_crafted_cifar100_batch_cannot_run_code(tmp_path):
    marker, base = tmp_path / "owned", tmp_path / "data" / "cifar-100-python"
    base.mkdir(parents=True)
    images = np.zeros((2, 3072), np.uint8)
    (base / "train").write_bytes(pickle.dumps({"data": images, "fine_labels": [0, 1], "x": Payload(marker)}))
    (base / "test").write_bytes(pickle.dumps({"data": images, "fine_labels": [0, 1]}))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": ["a"] * 100}))
    result, lines = invoke("train", "--dataset", "cifar100", "--data-dir", tmp_path / "data", "--device", "exact",
                           "--epochs", "1", "--out", tmp_path / "runs")
    assert result.exit_code == 2 and len(lines) == 1 and "posix.system" in lines[0] and "refused" in lines[0]
    assert not marker.exists()


def test_checkpoint_trees_keep_arrays_and_plain_data_exactly(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "rows": [{"loss": 0.1 + 0.2, "nan": float("nan")}],
            "rng": {"state": 2**127 + 3}, "nested": [[np.ones(2)], None, True, "s"]}
    write_tree(tmp_path / "t.npz", tree)
    back = read_tree(tmp_path / "t.npz")
    assert np.array_equal(back["w"], tree["w"]) and back["w"].dtype == np.float32
    assert back["rows"][0]["loss"] == 0.1 + 0.2 and np.isnan(back["rows"][0]["nan"])
    assert back["rng"] == tree["rng"] and back["nested"][1:] == [None, True, "s"]
    with pytest.raises(TypeError):
        write_tree(tmp_path / "u.npz", {"f": Payload("x")})


# 2. One writer per folder, and a folder knows what it holds


def test_a_second_writer_of_a_run_folder_gets_the_holders_pid(tmp_path):
    run_dir = exact_run(tmp_path / "runs")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from experiments.run.files import one_writer\n"
         f"with one_writer({str(run_dir)!r}, 'x'):\n    print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run([sys.executable, str(CLI), "train", "--resume", str(run_dir), "--epochs", "2"],
                                capture_output=True, text=True, timeout=120)
        lines = message_lines(second.stderr)
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert f"PID {holder.pid}" in lines[0] and "is writing this folder" in lines[0]
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1  # untouched
    stale = run_dir / ".metrics.csv.abc123.tmp"
    stale.write_text("half a file")
    result, _ = invoke("train", "--resume", run_dir, "--epochs", "2")  # the lock is free again
    assert result.exit_code == 0 and not stale.exists()


def test_a_sweep_folder_refuses_other_settings_unless_forced(tmp_path):
    common = ["sweep", "--device", "exact", "--grid", "lr=0.05", "--epochs", "1", "--out", tmp_path, "--name", "s1"]
    result, _ = invoke(*common)
    assert result.exit_code == 0, result.output
    result, lines = invoke(*common[:-4], "--batch-size", "20", "--out", tmp_path, "--name", "s1")
    assert result.exit_code == 2 and len(lines) == 1
    assert "holds a sweep with other settings (differs in: batch_size)" in lines[0]
    result, _ = invoke(*common[:-4], "--batch-size", "20", "--out", tmp_path, "--name", "s1", "--force-new")
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("s1.replaced-*"))) == 1
    assert json.loads((tmp_path / "s1" / "sweep.json").read_text())["base"]["batch_size"] == 20


@pytest.mark.parametrize("args,message", [
    (["--name", "a/../../b"], "--name 'a/../../b': give a plain folder name"),
    (["--name", "/abs"], "--name '/abs': give a plain folder name"),
    (["--name", "."], "--name '.': give a plain folder name"),
    (["--out", " "], "--out ' ': give a folder"),
])
def test_sweep_names_stay_inside_out(tmp_path, args, message):
    result, lines = invoke("sweep", "--device", "exact", "--grid", "lr=0.05", "--epochs", "1", *args)
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], lines


# 3. Every failure ends in a clear status and one line


def test_an_unexpected_error_inside_a_run_is_a_crashed_status(tmp_path, monkeypatch):
    from hilt.analog.optim import SGD

    calls = {"n": 0}
    step = SGD.step

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 40:
            raise MemoryError("out of memory in the 41st update")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SGD, "step", failing)
    result, lines = invoke("train", "--device", "exact", "--epochs", "2", "--out", tmp_path)
    assert result.exit_code == 1 and len(lines) == 1 and "MemoryError: out of memory in the 41st update" in lines[0]
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "crashed" and summary["error"] == "MemoryError: out of memory in the 41st update"
    assert "Traceback" in (run_dir / "error.log").read_text()


@pytest.mark.parametrize("args,message", [
    (["--lr-schedule", "warmup-cosine:1,3,0.01,0"], "rates > 0"),
    (["--device", "pcm", "--set", "write_noise_std=0.3"], "aihwkit's simulator refuses this device"),
    (["--rule", "dp", "--alpha", "1e-320"], "--alpha 1e-320: outside float32's normal range"),
    (["--rule", "pc", "--eta-h", "1e-39"], "--eta-h 1e-39: outside float32's normal range"),
    (["--out", ""], "--out '': give a folder"),
])
def test_inputs_that_would_fail_mid_run_are_refused_before_it(tmp_path, args, message):
    result, lines = invoke("train", "--epochs", "1", *(["--out", tmp_path] if "--out" not in args else []), *args)
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not any(tmp_path.iterdir())


def test_write_failures_are_one_line_for_every_command(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run_dir = exact_run(tmp_path / "runs")
    for args in (["report", run_dir, "--out", blocker / "table.md"],
                 ["sweep", "--device", "exact", "--grid", "lr=0.05", "--epochs", "1", "--out", blocker / "sweeps"],
                 ["rhm-pstar", "--device", "exact", "--rules", "bp", "--p-min", "8", "--p-max", "8", "--seeds", "1",
                  "--epochs", "1", "--out", blocker / "x"]):
        result, lines = invoke(*args)
        assert result.exit_code == 2 and len(lines) == 1 and "a-file" in lines[0], (args, lines)


def test_a_damaged_run_folder_is_one_line_naming_the_file(tmp_path):
    run_dir = exact_run(tmp_path / "runs")
    other = exact_run(tmp_path / "other", "--model", "mlp:64-32-10")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "epochs": "thirty"}))
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2")
    assert result.exit_code == 2 and len(lines) == 1 and "config.json is damaged: epochs = 'thirty'" in lines[0]
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "checkpoint.npz").write_bytes((other / "checkpoint.npz").read_bytes())  # another model's
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2")
    assert result.exit_code == 2 and len(lines) == 1 and "checkpoint.npz does not fit the network" in lines[0]
    (run_dir / "checkpoint.npz").write_bytes(b"PK\x03\x04 cut")
    result, lines = invoke("robustness", run_dir)
    assert result.exit_code == 2 and len(lines) == 1 and "checkpoint.npz is damaged" in lines[0]
    (run_dir / "summary.json").write_text("{")
    result, lines = invoke("robustness", run_dir)
    assert result.exit_code == 2 and len(lines) == 1 and "summary.json: damaged, not a JSON file" in lines[0]


def test_a_run_killed_in_its_final_evaluation_is_closed_by_resume(tmp_path):
    run_dir = exact_run(tmp_path / "runs", "--epochs", "2")
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = (run_dir / "metrics.csv").read_bytes()
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))  # as a kill leaves it
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    closed = json.loads(result.stdout)
    assert closed["status"] == "finished" and closed["epochs"] == 2
    assert closed["test_accuracy"] == summary["test_accuracy"] and (run_dir / "metrics.csv").read_bytes() == metrics


def test_a_loss_that_grows_without_overflowing_is_diverged(tmp_path):
    result, lines = invoke("train", "--device", "exact", "--lr", "1000", "--epochs", "4", "--out", tmp_path)
    assert result.exit_code == 3 and len(lines) == 1 and lines[0].startswith("diverged:"), lines
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert "above 10x its initial value" in summary["error"] or "not finite" in summary["error"]


def test_disk_labels_outside_the_classes_are_one_line(tmp_path):
    from tests.test_data import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "FashionMNIST" / "raw"
    write_idx(folder, "train", rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8), np.array([0, 1, 2, 3, 4, 11]))
    write_idx(folder, "t10k", rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8), np.array([0, 1, 2, 3]))
    result, lines = invoke("train", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "data", "--device", "exact",
                           "--epochs", "1", "--out", tmp_path / "runs")
    assert result.exit_code == 2 and len(lines) == 1 and "training labels range from 0 to 11" in lines[0], lines


def test_an_unreachable_ray_address_is_one_line_in_bounded_time(tmp_path):
    start = time.perf_counter()
    result, lines = invoke("sweep", "--device", "exact", "--grid", "lr=0.05", "--epochs", "1", "--out", tmp_path,
                           "--ray-address", "ray://127.0.0.1:9")
    assert result.exit_code == 2 and len(lines) == 1 and "no Ray cluster answers there" in lines[0]
    assert time.perf_counter() - start < 30


def test_messages_name_what_the_user_typed(tmp_path):
    result, lines = invoke("robustness", tmp_path)
    assert result.exit_code == 2 and lines[0].startswith(f"error: robustness {tmp_path}: not a finished run folder")
    result, lines = invoke("sweep", "--device", "ecram", "--grid", "update=summed,nope", "--epochs", "1", "--out", tmp_path)
    assert result.exit_code == 2 and "--grid point update=nope" in lines[0] and "--grid update" in lines[0], lines
    result, lines = invoke("rhm-pstar", "--rules", "dfa,bp,dfa", "--out", tmp_path)
    assert result.exit_code == 2 and "--rules: dfa is listed twice" in lines[0]


# 5. Reproducibility stated


def test_config_says_whether_the_analog_noise_is_seeded(tmp_path):
    run_dir = exact_run(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["analog_noise_seeded"] is None
    result = runner.invoke(app, ["train", "--device", "ideal", "--epochs", "1", "--model", "mlp:64-16-10",
                                 "--out", str(tmp_path / "a"), "--json"])
    config = json.loads((Path(json.loads(result.stdout)["run_dir"]) / "config.json").read_text())
    assert config["analog_noise_seeded"] is False


@pytest.mark.slow
def test_nothing_written_before_is_replaced_without_force(tmp_path):
    """report --out onto a run's config.json, devices fit beside an existing plot, a second
    robustness call: refused or written beside, never over (17/18)."""
    run_dir = exact_run(tmp_path / "runs")
    config = (run_dir / "config.json").read_text()
    result, lines = invoke("report", tmp_path / "runs", "--out", run_dir / "config.json")
    assert result.exit_code == 2 and len(lines) == 1 and "exists" in lines[0] and "--force" in lines[0]
    assert (run_dir / "config.json").read_text() == config
    assert invoke("report", tmp_path / "runs", "--out", tmp_path / "t.md")[0].exit_code == 0
    assert invoke("report", tmp_path / "runs", "--out", tmp_path / "t.md", "--force")[0].exit_code == 0
    for _ in range(2):
        assert invoke("robustness", run_dir, "--draws", "1")[0].exit_code == 0
    kept = sorted(p.name for p in (run_dir / "robustness").iterdir())
    assert kept == ["robustness-2.csv", "robustness-2.png", "robustness.csv", "robustness.png"]
    (tmp_path / "mine.png").write_bytes(b"not yours")
    result, lines = invoke("devices", "fit", ROOT / "devices" / "measured" / "gong_et_al.csv", "--model", "piecewise",
                           "--out", tmp_path / "mine.json")
    assert result.exit_code == 2 and "mine.png exists" in lines[0]
    assert (tmp_path / "mine.png").read_bytes() == b"not yours" and not (tmp_path / "mine.json").exists()


def test_report_keeps_the_default_update_apart_from_a_chosen_one(tmp_path):
    for extra in ([], ["--update", "summed"]):
        result = runner.invoke(app, ["train", "--device", "rram", "--epochs", "1", "--out", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
    result, _ = invoke("report", tmp_path)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| digits")]
    assert len(rows) == 2 and "| - |" in rows[0] and "| summed |" in rows[1], result.stdout


def test_resume_names_what_differs_in_the_users_words(tmp_path):
    run_dir = exact_run(tmp_path / "runs")
    other = json.loads((ROOT / "experiments" / "measure" / "cost_table.json").read_text())
    other["costs"]["read_s"]["value"] = 1e-8
    (tmp_path / "other.json").write_text(json.dumps(other))
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2", "--cost", tmp_path / "other.json")
    assert result.exit_code == 2 and len(lines) == 1 and "--cost gives another cost table than the run's" in lines[0]
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2", "--update", "sgd")
    assert result.exit_code == 2 and "differs from the run's default (it was not given)" in lines[0]
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1  # nothing trained


def test_resume_compares_update_with_the_presets_own(tmp_path):
    """A run of rram without --update used rram's own algorithm, sgd: naming it on resume is no change."""
    result = runner.invoke(app, ["train", "--device", "rram", "--epochs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    result, lines = invoke("train", "--resume", run_dir, "--epochs", "2", "--update", "mp")
    assert result.exit_code == 2 and "--update mp differs from the run's sgd" in lines[0]
    result, _ = invoke("train", "--resume", run_dir, "--epochs", "2", "--update", "sgd")
    assert result.exit_code == 0 and json.loads((run_dir / "summary.json").read_text())["epochs"] == 2
