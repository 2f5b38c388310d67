"""Property-based checks (Hypothesis) that user input of any shape gets a clear answer: exit code
0 or 2, no traceback, at most one error line, nothing else written. Bounded for CI
(HYPOTHESIS_PROFILE=ci, the default: 25 examples per property, the same ones every run, so CI
does not fail by chance); HYPOTHESIS_PROFILE=slow runs 500 fresh ones per property. They cover --set values, device files and cost tables of any JSON shape,
measurement CSVs of any columns, every numeric flag of train and its rule options, recipe names,
report's options, sweep grids, and run folders whose files hold anything; each invocation must
also end within a bound. Signals are tested in test_signals.py."""

import hashlib
import itertools
import json
import os
import shutil
import string
import time

import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from pathlib import Path

from hilt.cli import app
from hilt.devices.presets import PARAMS
from tests.helpers import message_lines, runner

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("slow", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([0, -0.0, 1e-300, 1e308, -1, 2**63]))
TEXT = st.text(alphabet=string.printable + "é√\u202e", max_size=30)
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | TEXT,
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
                    max_leaves=20)


BOUND_S = 120  # no input may keep a command busy longer than this here (tiny data, one epoch)
_fresh = itertools.count()


def fresh(tmp_path) -> "os.PathLike":
    """A path not used by an earlier example (Hypothesis shares the test's tmp_path among them)."""
    return tmp_path / f"ex{next(_fresh)}"


def invoke(args: list[str]):
    started = time.monotonic()
    result = runner.invoke(app, [str(a) for a in args])
    assert time.monotonic() - started < BOUND_S, args
    return result


def answered_cleanly(result, codes=(0, 2)) -> list[str]:
    """Exit 0 or 2 (or other `codes`), no traceback, at most one error line; the error lines."""
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit)), \
        result.output
    lines = message_lines(result.stderr)
    if result.exit_code == 2:
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines


@given(key=st.sampled_from(sorted(PARAMS)), value=st.one_of(NUMBERS.map(str), TEXT))
def test_any_set_value_is_taken_or_refused_in_one_line(key, value):
    answered_cleanly(runner.invoke(app, ["devices", "show", "rram", "--set", f"{key}={value}"]))


@given(body=JSON)
def test_a_device_file_of_any_shape_is_refused_in_one_line(tmp_path, body):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(body, allow_nan=True))
    result = runner.invoke(app, ["devices", "show", str(path)])
    answered_cleanly(result)
    assert result.exit_code == 2  # nothing of this shape is a device file


@given(body=JSON, costs=st.dictionaries(st.sampled_from(["read_s", "pulse_up_j", "cell_read_j", "x"]), JSON, max_size=3))
def test_a_cost_table_of_any_shape_is_refused_in_one_line(tmp_path, body, costs):
    path = tmp_path / "cost.json"
    path.write_text(json.dumps({"format": "hilt-cost-1", "costs": costs} if isinstance(body, dict) else body, allow_nan=True))
    out = tmp_path / "runs"
    result = runner.invoke(app, ["train", "--epochs", "1", "--cost", str(path), "--out", str(out)])
    answered_cleanly(result)
    assert result.exit_code == 2 and not out.exists()


@given(columns=st.lists(st.sampled_from(["pulse", "conductance", "trace", "device", "x", ""]), min_size=1, max_size=4,
                        unique=True),
       rows=st.lists(st.lists(st.one_of(NUMBERS, TEXT), min_size=4, max_size=4), max_size=6))
def test_a_measurement_csv_of_any_columns_is_refused_or_fitted(tmp_path, columns, rows):
    path = tmp_path / "m.csv"
    pd.DataFrame([r[: len(columns)] for r in rows], columns=columns).to_csv(path, index=False)
    out = tmp_path / "dev.json"
    if out.exists():
        out.unlink()
        out.with_suffix(".png").unlink(missing_ok=True)
    answered_cleanly(runner.invoke(app, ["devices", "fit", str(path), "--model", "piecewise", "--out", str(out)]))


NUMERIC_FLAGS = [("bp", "--lr"), ("bp", "--batch-size"), ("bp", "--seed"), ("bp", "--momentum"), ("bp", "--weight-decay"),
                 ("bp", "--eval-every"), ("dp_adjoint", "--alpha"), ("dp_adjoint", "--beta"), ("bp", "--lr-schedule"),
                 ("bp", "--epochs")]


@given(rule_flag=st.sampled_from(NUMERIC_FLAGS), value=st.one_of(NUMBERS.map(str), TEXT, st.integers(1, 2).map(str)))
def test_any_value_of_a_train_flag_trains_or_is_refused_before_any_file(tmp_path, rule_flag, value):
    rule, flag = rule_flag
    if flag == "--epochs" and value.strip().lstrip("+").isdigit() and int(value) > 2:
        value = "-" + value  # a valid epoch count trains that long; its refusals are what is fuzzed
    out = fresh(tmp_path)
    args = ["train", "--device", "exact", "--rule", rule, flag, value, "--out", out]
    result = invoke(args if flag == "--epochs" else [*args, "--epochs", "1"])
    answered_cleanly(result, codes=(0, 2, 3))  # 3: a huge learning rate diverges
    if result.exit_code == 2:
        assert not os.path.exists(out)


@given(name=TEXT)
def test_any_recipe_name_is_refused_in_one_line(tmp_path, name):
    out = fresh(tmp_path)
    result = invoke(["train", "--recipe", name, "--epochs", "1", "--out", out])
    answered_cleanly(result)
    assert result.exit_code == 2 and not os.path.exists(out)
    answered_cleanly(invoke(["recipes", name]))


def _digest(folder) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_run(tmp_path):
    runs = tmp_path / "runs"
    if not runs.exists():
        assert invoke(["train", "--device", "exact", "--epochs", "1", "--out", runs]).exit_code == 0
    return runs


@given(metric=st.one_of(st.none(), TEXT, st.sampled_from(["test_accuracy", "seed", "lr"])),
       group_by=st.one_of(st.none(), TEXT, st.sampled_from(["rule", "device,rule", "rule,rule", ",", "test_accuracy"])),
       plot=st.one_of(st.none(), TEXT.map(lambda t: t.replace("/", "") + ".png"), TEXT.map(lambda t: "p." + t.replace("/", ""))))
def test_any_report_request_is_answered_and_changes_no_run(tmp_path, metric, group_by, plot):
    runs = _one_run(tmp_path)
    before = _digest(runs)
    args = ["report", runs]
    for flag, value in (("--metric", metric), ("--group-by", group_by)):
        if value is not None:
            args += [flag, value]
    if plot is not None:
        args += ["--plot", fresh(tmp_path).with_name(fresh(tmp_path).name + "-" + plot) if plot.strip() else plot]
    answered_cleanly(invoke(args))
    assert _digest(runs) == before


GRID_KEYS = ["lr", "batch_size", "model", "activation", "rule", "seed", "beta", "dw_min", "x", ""]


@given(key=st.sampled_from(GRID_KEYS), values=st.lists(st.one_of(NUMBERS.map(str), TEXT), min_size=1, max_size=2))
def test_any_sweep_grid_is_planned_or_refused_before_the_first_point(tmp_path, key, values):
    out = fresh(tmp_path)
    result = invoke(["sweep", "--device", "exact", "--epochs", "1", "--grid", f"{key}=" + ";".join(values), "--out", out])
    answered_cleanly(result, codes=(0, 2, 3))
    if result.exit_code == 2:
        assert not any(os.path.exists(p) for p in [out]) or not any(Path(out).rglob("summary.json"))


RUN_FILES = ["config.json", "summary.json", "metrics.csv", "checkpoint.npz"]


@given(name=st.sampled_from(RUN_FILES), body=st.one_of(JSON.map(lambda j: json.dumps(j, allow_nan=True).encode()),
                                                        st.binary(max_size=64), st.just(b"")))
def test_a_run_folder_file_holding_anything_is_named_in_one_line(tmp_path, name, body):
    (run,) = [p for p in _one_run(tmp_path).iterdir() if p.is_dir()]
    copy = fresh(tmp_path)
    shutil.copytree(run, copy)
    (copy / name).write_bytes(body)
    before = _digest(copy)
    for args in (["train", "--resume", copy, "--epochs", "2"], ["report", copy]):
        result = invoke(args)
        lines = answered_cleanly(result)
        if result.exit_code == 2:
            assert _digest(copy) == before, (args, lines)
