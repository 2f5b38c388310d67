"""The Python API (api.py): the same runs as the CLI, runs kept in memory, the Run object, studies."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hilt
from hilt.cli import app
from hilt.errors import HiltError
from hilt.experiments.run.run_folder import RunFolder
from tests.helpers import runner

ROOT = Path(__file__).resolve().parents[1]


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*"))


def test_import_hilt_is_light_until_a_function_runs():
    """No numpy, torch, aihwkit, Ray or pandas for `import hilt`, nor for looking up hilt.train."""
    code = ("import sys, hilt; hilt.train; hilt.Device; "
            "print(sorted(m for m in ('numpy', 'torch', 'aihwkit', 'ray', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_out_none_writes_nothing_and_equals_the_cli_bit_for_bit(tmp_path, monkeypatch):
    cli_out = tmp_path / "cli"
    result = runner.invoke(app, ["train", "--device", "exact", "--epochs", "2", "--seed", "3", "--lr", "0.1",
                                 "--out", str(cli_out), "--json"])
    assert result.exit_code == 0, result.output
    cli = RunFolder(Path(json.loads(result.stdout)["run_dir"]))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = all_files(tmp_path)
    run = hilt.train(device="exact", epochs=2, seed=3, lr=0.1, out=None)
    assert all_files(tmp_path) == before  # nothing written anywhere under tmp_path, cwd included
    assert run.run_dir is None and run.status == "finished"
    api_rows, cli_rows = run.metrics.to_dict("records"), cli.metrics()
    assert len(api_rows) == len(cli_rows) == 5  # epoch 0 test, then train + test per epoch
    for mine, theirs in zip(api_rows, cli_rows):
        for key in ("epoch", "split", "loss", "accuracy", "accuracy_exact_readout", "forward_reads"):
            assert mine[key] == theirs[key] or (pd.isna(mine[key]) and theirs[key] is None), (key, mine, theirs)  # no tolerance
    cli_summary = cli.summary()
    for key in ("test_accuracy", "train_loss", "train_energy_j", "train_reads"):
        assert run.summary[key] == cli_summary[key], key


def test_run_metrics_network_and_in_memory_resume():
    run = hilt.train(device="exact", epochs=2, lr=0.1, out=None)
    frame = run.metrics
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.split) == ["test", "train", "test", "train", "test"]
    assert {"loss", "accuracy", "forward_reads", "transposed_reads", "energy_j"} <= set(frame.columns)
    # predict: the rule's scores; their argmax is the test accuracy the run reports
    data = run._setup.data
    scores = run.network.predict(data.x_test)
    assert scores.shape == (len(data.x_test), 10) and isinstance(scores, np.ndarray)
    assert (scores.argmax(1) == data.y_test).mean() == pytest.approx(run.summary["test_accuracy"], abs=1e-12)
    weights = run.network.weights()
    assert [w.shape for w in weights] == [(512, 65), (10, 513)]
    weights[0][:] = 0  # a copy: the network is untouched
    assert np.abs(run.network.weights()[0]).sum() > 0
    with pytest.raises(HiltError, match="this network takes"):
        run.network.predict(np.zeros((2, 5)))
    # 2 + 2 epochs in memory equal 4 epochs, bit for bit
    resumed = run.resume(epochs=4)
    straight = hilt.train(device="exact", epochs=4, lr=0.1, out=None)
    assert resumed.summary["epochs"] == 4 and resumed.summary["resumes"] == [{"from_epoch": 2, "to_epochs": 4}]
    pd.testing.assert_frame_equal(resumed.metrics.drop(columns=[]), straight.metrics)


def test_load_run_opens_a_run_folder_with_its_network(tmp_path):
    run = hilt.train(device="exact", epochs=1, out=str(tmp_path))
    assert run.run_dir is not None and (run.run_dir / "config.json").is_file()
    loaded = hilt.load_run(run.run_dir)
    data = loaded._setup.data
    assert (loaded.network.predict(data.x_test).argmax(1) == data.y_test).mean() == run.summary["test_accuracy"]
    assert loaded.summary == run.summary
    more = loaded.resume(epochs=2)
    assert more.summary["epochs"] == 2 and more.run_dir == run.run_dir


def test_on_epoch_is_called_and_an_interrupt_ends_the_run_interrupted():
    seen = []

    def on_epoch(train_row, test_row):
        seen.append((train_row["epoch"], test_row["accuracy"]))
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C in a notebook raises

    run = hilt.train(device="exact", epochs=5, out=None, on_epoch=on_epoch)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert run.status == "interrupted" and run.summary["epochs"] == 2
    assert run.resume(epochs=3).summary["status"] == "finished"


@pytest.mark.parametrize("settings,message", [
    ({"epoch": 3}, "unknown setting 'epoch'; allowed: dataset"),
    ({"lr": -1.0}, "--lr must be a finite number > 0"),
    ({"epochs": "3"}, "epochs='3': expected int"),
    ({"device": "rram", "optimizer": "adam"}, "--optimizer/--momentum/--weight-decay apply to --device exact only"),
    ({"rule": "dp_adjoint", "alpha": 2.0}, "--alpha must be in [0, 1]"),
    ({"rule": "bp", "alpha": 0.5}, "rule bp takes no --alpha"),
    ({"rule": "nope"}, "unknown rule 'nope'"),
    ({"sets": "dw_min=1"}, "sets: expected a list of 'KEY=VALUE' strings or a dict"),
    ({"device": "rram", "sets": {"dw_min": -1}}, "dw_min"),
])
def test_bad_settings_are_the_clis_one_line_errors(settings, message):
    with pytest.raises(HiltError) as err:
        hilt.train(out=None, **{"epochs": 1, **settings})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_device_built_in_python_trains_and_saves(tmp_path):
    device = hilt.Device.from_params("ConstantStepDevice", name="mine", dw_min=0.01, w_min=-1.0, w_max=1.0,
                                     dw_min_std=0.0)
    run = hilt.train(device=device, epochs=1, out=None)
    assert run.status == "finished" and run.summary["test_accuracy"] > 0.5
    path = device.save(tmp_path / "mine.json")
    with pytest.raises(HiltError, match="exists"):
        device.save(path)
    assert hilt.Device.load(path).params == device.params
    assert hilt.train(device=str(path), epochs=1, out=None).status == "finished"
    with pytest.raises(HiltError, match="not supported"):
        hilt.Device.from_params("NoSuchDevice", dw_min=0.1)


def test_fit_device_returns_a_device(tmp_path):
    from aihwkit.simulator.configs import devices as D

    from hilt.devices.fitting import synthetic_measurements

    true = D.ConstantStepDevice(dw_min=0.04, up_down=0.0, w_min=-1, w_max=1, dw_min_std=0.0, dw_min_dtod=0.0,
                                up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
    rows = synthetic_measurements(true, cycles=2, pulses=60)
    pd.DataFrame(rows, columns=["pulse", "conductance", "trace", "device"]).to_csv(tmp_path / "m.csv", index=False)
    device = hilt.fit_device(tmp_path / "m.csv", model="constant", g_min=-1.0, g_max=1.0)
    assert device.definition["device"]["class"] == "ConstantStepDevice"
    assert device.params["dw_min"] == pytest.approx(0.04, rel=0.1)
    assert device.fit.result.rmse < 0.05
    assert device.save(tmp_path / "fitted.json").is_file()


def test_listings_name_every_rule_and_device():
    from hilt.devices.presets import PRESETS
    from hilt.rules import BUILTIN

    rules = hilt.list_rules()
    assert list(rules.name[: len(BUILTIN)]) == list(BUILTIN)
    assert (rules.source[: len(BUILTIN)] == "built-in").all() and rules.description.str.len().min() > 10
    assert set(PRESETS) <= set(hilt.list_devices().name)
    assert "dp-vgg16-cifar10" in hilt.list_recipes()


def test_studies_from_python(tmp_path):
    table = hilt.sweep(grid={"lr": [0.05, 0.1]}, device="exact", epochs=1, out=str(tmp_path / "sweeps"))
    assert isinstance(table, pd.DataFrame) and list(table.lr) == [0.05, 0.1] and (table.status == "finished").all()
    report = hilt.report(tmp_path / "sweeps")
    assert list(report.table["lr"]) == [0.05, 0.1] and "| lr" in report.markdown
    comparison = hilt.compare(device="ideal", rule="bp", epochs=1, out=str(tmp_path / "cmp"), every=20)
    assert comparison.summary["status"] == "finished" and (comparison.run_dir / "compare.csv").is_file()
    assert set(comparison.table.path) == {"exact", "ideal"}
    with pytest.raises(HiltError, match="give out=PATH"):
        hilt.compare(device="rram", epochs=1, out=None)


def test_the_quickstart_example_runs_on_a_tiny_budget(tmp_path, monkeypatch):
    import runpy

    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(ROOT / "examples" / "quickstart.py"))["main"]
    runs = main(epochs=1, figure=str(tmp_path / "q.png"))
    assert set(runs) == {"exact", "rram"} and all(r.status == "finished" for r in runs.values())
    assert runs["exact"].summary["test_accuracy"] > 0.5 and runs["rram"].summary["train_expected_pulses"] > 0
    assert (tmp_path / "q.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.png"]  # out=None: the figure is the only file


def test_robustness_from_python(tmp_path):
    run = hilt.train(device="exact", epochs=1, out=str(tmp_path))
    frame = hilt.robustness(run.run_dir, draws=1)
    assert list(frame.columns) == ["family", "value", "draw", "accuracy"]
    assert frame.accuracy.iloc[0] == run.summary["test_accuracy"] and len(frame) > 20
