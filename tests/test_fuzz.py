"""Property-based checks (Hypothesis) that user input of any shape gets a clear answer: exit code
0 or 2, no traceback, at most one error line, nothing else written. Bounded for CI
(HYPOTHESIS_PROFILE=ci, the default: a few dozen examples per property); HYPOTHESIS_PROFILE=slow
runs many more. These cover --set values, device files and cost tables of any JSON shape, and
measurement CSVs of any columns; the rest of 17/18's inputs are not fuzzed yet."""

import json
import os
import string

import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from hilt.cli import app
from hilt.devices.presets import PARAMS
from tests.helpers import message_lines, runner

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("slow", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([0, -0.0, 1e-300, 1e308, -1, 2**63]))
TEXT = st.text(alphabet=string.printable + "é√\u202e", max_size=30)
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | TEXT,
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
                    max_leaves=20)


def answered_cleanly(result) -> list[str]:
    """Exit 0 or 2, no traceback, at most one error line; the error lines."""
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
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
