"""Every file a user hands in goes through one reader (userfiles.py): a regular file, a size
limit, UTF-8, bounded JSON. Each case is one line and exit 2, no hang, no traceback (17/18)."""

import json
import os

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
