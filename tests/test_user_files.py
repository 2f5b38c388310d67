"""Every file a user hands in goes through one reader (userfiles.py): a regular file, a size
limit, UTF-8, bounded JSON. Each case is one line and exit 2, no hang, no traceback (17/18)."""

import json
import os
from pathlib import Path

import pytest

from tests.helpers import message_lines, runner
from hilt.cli import app


def bad_files(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    nan = tmp_path / "nan.json"
    nan.write_text('{"format": "hilt-cost-1", "costs": {"read_s": {"value": NaN}}}')
    return {"a pipe": (fifo, "not a regular file"), "latin-1": (latin, "not UTF-8 text"),
            "deep": (deep, "nested deeper than 64"), "NaN": (nan, "NaN is not a number JSON allows"),
            "a folder": (tmp_path, "is a folder"), "/dev/zero": ("/dev/zero", "not a regular file")}


@pytest.mark.parametrize("command", [
    ["train", "--epochs", "1", "--device", "{path}"],
    ["train", "--epochs", "1", "--cost", "{path}"],
    ["devices", "fit", "{path}"],
])
def test_bad_user_files_are_one_line(tmp_path, command):
    for case, (path, message) in bad_files(tmp_path).items():
        if command[-1] == "{path}" and command[-2] == "--device" and not str(path).endswith(".json"):
            continue  # a --device that is not NAME.json is read as a preset name
        args = [str(path) if a == "{path}" else a for a in command]
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")] if command[0] == "train" else args)
        lines = message_lines(result.stderr)
        assert result.exit_code == 2 and len(lines) == 1, (case, result.output)
        if command[0] != "devices" or case not in ("NaN", "deep"):  # a CSV is not JSON: other messages
            assert message in lines[0], (case, lines[0])
    assert not (tmp_path / "out").exists()


def test_a_damaged_run_file_names_itself(tmp_path):
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "1", "--out", str(tmp_path), "--json"])
    run_dir = json.loads(result.stdout)["run_dir"]
    (tmp_path / run_dir.split("/")[-1] / "config.json").write_bytes(b"\xff\xfe{}")
    result = runner.invoke(app, ["train", "--resume", run_dir, "--epochs", "2"])
    lines = message_lines(result.stderr)
    assert result.exit_code == 2 and len(lines) == 1 and "config.json" in lines[0] and "not UTF-8" in lines[0]


def _definition(tmp_path, **params):
    base = json.loads((Path(__file__).resolve().parents[1] / "results" / "reference" / "gong2018" / "gong-piecewise.json").read_text())
    base["device"]["params"].update(params)
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(base))
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["train", "--device", "neurosim:nl_ltp=nan"], "nl_ltp=nan is not a finite number"),
    (["train", "--device", "neurosim:levels=inf"], "levels=inf is not a finite number"),
    (["train", "--device", "neurosim:nl_ltp=1e-9"], "a nonlinearity is 0 or at least 0.01"),
    (["train", "--device", "neurosim:nl_ltd=12"], "nl_ltd must be in [-9.0, 9.0]"),
    (["train", "--device", "{dw_min=-0.01}"], "dw_min = -0.01 is out of range, allowed [1e-07, 1.0] (as --set dw_min)"),
    (["train", "--device", "{dw_min=0}"], "dw_min = 0.0 is out of range"),
    (["train", "--device", "{w_min=0.5}"], "w_min < 0 < w_max is needed"),
    (["devices", "fit", "devices/measured/gong_et_al.csv", "--w-max", "inf"], "--w-min < 0 < --w-max"),
    (["devices", "fit", "devices/measured/gong_et_al.csv", "--w-min", "0.1"], "--w-min < 0 < --w-max"),
    (["devices", "fit", "devices/measured/gong_et_al.csv", "--g-min", "nan"], "--g-min nan is not a finite number"),
    (["train", "--cost", "{pulse_up_j=1e308}"], "pulse_up_j needs {\"value\": a number in [0, 1]"),
])
def test_every_number_is_checked_where_it_enters(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    resolved = []
    for a in args:
        if a.startswith("{") and a.endswith("}"):
            key, value = a[1:-1].split("=")
            if key == "pulse_up_j":
                table = json.loads((Path("experiments/measure/cost_table.json")).read_text())
                table["costs"][key]["value"] = float(value)
                (tmp_path / "cost.json").write_text(json.dumps(table))
                a = str(tmp_path / "cost.json")
            else:
                a = _definition(tmp_path, **{key: float(value)})
        resolved.append(a)
    out = ["--out", str(tmp_path / ("o.json" if args[0] == "devices" else "runs"))]
    result = runner.invoke(app, [*resolved, *out] + (["--epochs", "1"] if args[0] == "train" else []))
    lines = message_lines(result.stderr)
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o.json").exists()
