"""Bring your own device: fitting device models to pulse-response data, device files, NeuroSim devices."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aihwkit.simulator.configs import devices as D

from hilt.devices import parse_device
from hilt.devices.device_file import MODELS
from hilt.devices.fitting import definition, fit, fit_config, layout, read_measurements, simulate, synthetic_measurements
from hilt.devices.neurosim import conductance_after, neurosim_definition, normalized_a
from helpers import runner
from hilt.cli import app

NO_D2D = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
C2C = 0.2
TRUE = {
    # (bounds the traces do not reach: a hard bound clips the noise, and pairs of reads near it are left out)
    "constant": D.ConstantStepDevice(dw_min=0.02, up_down=0.1, w_min=-3, w_max=3, dw_min_std=C2C, **NO_D2D),
    "softbounds": D.SoftBoundsDevice(dw_min=0.02, up_down=-0.2, w_min=-1, w_max=1.2, dw_min_std=C2C, **NO_D2D),
    "linear": D.LinearStepDevice(dw_min=0.02, up_down=0.1, w_min=-1, w_max=1, gamma_up=0.5, gamma_down=0.3,
                                 gamma_up_dtod=0, gamma_down_dtod=0, dw_min_std=C2C, **NO_D2D),
    "exp": D.ExpStepDevice(dw_min=0.03, up_down=0.0, w_min=-1, w_max=1, A_up=0.1, A_down=0.1, gamma_up=2.0,
                           gamma_down=2.0, dw_min_std=C2C, **NO_D2D),
    "pow": D.PowStepDevice(dw_min=0.05, up_down=0.1, w_min=-1, w_max=1, pow_gamma=2.0, pow_gamma_dtod=0,
                           dw_min_std=C2C, **NO_D2D),
    "piecewise": D.PiecewiseStepDevice(dw_min=0.02, up_down=0.0, w_min=-1, w_max=1, piecewise_up=[1.5, 1.2, 1.0, 0.6, 0.3],
                                       piecewise_down=[0.3, 0.7, 1.0, 1.2, 1.6], dw_min_std=C2C, **NO_D2D),
}


def write_curve(path, device, devices=1, scale=1.0, cycles=4, **kw):
    rows = synthetic_measurements(device, cycles=cycles, pulses=100, devices=devices, **kw)
    frame = pd.DataFrame(rows, columns=["pulse", "conductance", "trace", "device"])
    frame["conductance"] *= scale
    frame.to_csv(path, index=False)
    return path


def measured(tmp_path, model, cycles=4):
    # conductance = weight, and the map given, so fitted parameters compare with the true ones
    return read_measurements(str(write_curve(tmp_path / f"{model}.csv", TRUE[model], cycles=cycles)), -1.0, 1.0, -1.0, 1.0)


@pytest.mark.parametrize("model", ["constant", "softbounds", "linear"])
def test_fit_recovers_the_parameters_of_aihwkit_traces(tmp_path, model):
    """8 cycles of 100 up / 100 down pulses (aihwkit's noise is seeded from the clock: new data every
    run). Measured over 5 draws each: up_down off by at most 0.020, dw_min by 1.8 %; with 4 cycles
    up to 0.039 and once 0.055 on up_down. dw_min_std, split from the reads' scatter (no other
    noise here; 8 cycles of a weak noise): 0.13-0.265 over 30 draws for the true 0.2, so 50 %
    here; test_the_noise_splits_into_what_accumulates_and_what_does_not checks the split
    closely on more data."""
    result = fit(measured(tmp_path, model, cycles=8), model)
    truth = TRUE[model]
    assert result.params["dw_min"] == pytest.approx(truth.dw_min, rel=0.10)
    assert abs(result.params["up_down"] - truth.up_down) < 0.05
    assert result.params["dw_min_std"] == pytest.approx(C2C, rel=0.5)
    assert result.params["dw_min_dtod"] == 0.0  # one device: not measured


@pytest.mark.parametrize("model", ["exp", "pow", "piecewise"])
def test_fit_matches_the_response_as_well_as_the_true_device(tmp_path, model):
    """exp's dw_min, A and gamma trade off, as do pow's dw_min, bounds and exponent on a curve that
    does not reach its bounds (measured: dw_min off by up to 2x at an equally good fit), and
    piecewise has no scalar parameters: they are judged by the response they reproduce. Their
    noise split rests on that trend, and what of it the model misses counts as accumulating
    noise: 5 draws of 8 cycles gave dw_min_std 0.13-0.20 (piecewise), 0.26-0.31 (exp: its trend
    misfit adds) for the true 0.2. pow's parameters trade off, and its split on 8 cycles spread
    0.14-0.25 over 12 draws but gave 0.0 once in CI; on 16 cycles 15 draws gave 0.115-0.236.
    piecewise on 8 cycles gave 0.111 once in CI (60 local draws: 0.123-0.242); on 16 cycles 60
    draws gave 0.138-0.237."""
    meas = measured(tmp_path, model, cycles=16 if model in ("pow", "piecewise") else 8)
    result = fit(meas, model)
    lay = layout(meas)
    true_rmse = np.sqrt(np.mean((simulate(fit_config(TRUE[model]), lay) - lay.target)[lay.mask] ** 2))
    assert result.rmse <= 1.25 * true_rmse
    if model == "piecewise":
        assert result.params["dw_min_std"] == pytest.approx(C2C, rel=0.4)
    else:
        assert 0.25 * C2C < result.params["dw_min_std"] < 2 * C2C


NOISY = {  # both kinds of noise at once: cycle-to-cycle 0.5 (relative), write noise 2 dw_min, read noise 0.02
    "constant": D.ConstantStepDevice(dw_min=0.01, up_down=0.1, w_min=-2, w_max=2, dw_min_std=0.5, **NO_D2D),
    "softbounds": D.SoftBoundsDevice(dw_min=0.02, up_down=-0.2, w_min=-1, w_max=1.2, dw_min_std=0.5,
                                     write_noise_std=2.0, **NO_D2D),
    "linear": D.LinearStepDevice(dw_min=0.02, up_down=0.1, w_min=-1, w_max=1, gamma_up=0.5, gamma_down=0.3,
                                 gamma_up_dtod=0, gamma_down_dtod=0, dw_min_std=0.5, write_noise_std=2.0, **NO_D2D),
    "piecewise": D.PiecewiseStepDevice(dw_min=0.02, up_down=0.0, w_min=-1, w_max=1, piecewise_up=[1.5, 1.2, 1.0, 0.6, 0.3],
                                       piecewise_down=[0.3, 0.7, 1.0, 1.2, 1.6], dw_min_std=0.5, write_noise_std=2.0,
                                       **NO_D2D),
}


@pytest.mark.parametrize("model", list(NOISY))
def test_the_noise_splits_into_what_accumulates_and_what_does_not(tmp_path, model):
    """aihwkit traces (16 cycles of 100 up / 100 down) with cycle-to-cycle noise (accumulates),
    write noise and read noise (do not) fitted back. Measured over 3 draws per model: dw_min_std
    within 19 % of 0.5, the non-accumulating sigma within 6 % (ConstantStepDevice has no write
    noise: its sigma is the read noise alone). piecewise over 10 more draws: 0.448-0.598, and
    once in CI 0.325 (aihwkit's noise is clock-seeded: a tail draw), hence 40 % here."""
    device = NOISY[model]
    rows = synthetic_measurements(device, cycles=16, pulses=100, read_noise=0.02)
    pd.DataFrame(rows, columns=["pulse", "conductance", "trace", "device"]).to_csv(tmp_path / "noisy.csv", index=False)
    span = 2.0 if model == "constant" else 1.0
    result = fit(read_measurements(str(tmp_path / "noisy.csv"), -span, span, -span, span), model)
    noise = result.noise
    sigma = math.hypot(getattr(device, "write_noise_std", 0.0) * device.dw_min, 0.02)
    assert noise.dw_min_std == pytest.approx(0.5, rel=0.4)
    assert noise.sigma_non_accumulating == pytest.approx(sigma, rel=0.1)
    assert noise.dw_min_std_ci[0] <= noise.dw_min_std <= noise.dw_min_std_ci[1]
    assert result.params["dw_min_std"] == noise.dw_min_std
    if model != "constant":  # --non-accumulating write (the default): aihwkit's write noise, in units of dw_min
        assert result.params["write_noise_std"] == pytest.approx(noise.sigma_non_accumulating / result.params["dw_min"])
    read = fit(read_measurements(str(tmp_path / "noisy.csv"), -span, span, -span, span), model, non_accumulating="read")
    assert "write_noise_std" not in read.params


GONG = Path(__file__).resolve().parents[1] / "devices" / "measured" / "gong_et_al.csv"


@pytest.mark.parametrize("model", ["softbounds", "piecewise"])
def test_measured_hfo2_reram_gives_a_device_that_learns(model):
    """Gong et al. 2018's measured HfO2 ReRAM pulse response (1 000 up, then 1 000 down pulses, in
    aihwkit's two-column layout): the scatter of its reads (about 0.12 of the range [-1, 1] by
    eye, correlated over a few pulses) is found as noise that does not accumulate, and the fitted
    device trains (the fit before the split called it all cycle-to-cycle noise, 35 steps per
    pulse, and bp stayed at chance)."""
    import hilt

    meas = read_measurements(str(GONG))
    assert meas.rows == 2000 and len(meas.traces) == 1
    result = fit(meas, model)
    noise = result.noise
    assert 0.10 < noise.sigma_non_accumulating < 0.16
    assert noise.sigma_non_accumulating_ci[0] < noise.sigma_non_accumulating < noise.sigma_non_accumulating_ci[1]
    assert noise.rho > 0.2  # its reads are correlated from one pulse to the next
    assert noise.dw_min_std < 10 and 300 < 2 / result.params["dw_min"] < 1500  # steps across the data's range
    assert result.rmse < 0.07 * 2
    device = hilt.Device(definition(result, meas, f"gong-{model}"))
    run = hilt.train(device=device, rule="bp", epochs=3, out=None)
    # learns, far from the old fit's chance (0.10); 3 epochs of aihwkit's unseeded pulses vary: 0.56 once (softbounds)
    assert run.summary["test_accuracy"] > 0.35


def test_device_to_device_spread_from_several_devices(tmp_path):
    device = D.SoftBoundsDevice(dw_min=0.02, up_down=0.0, w_min=-1, w_max=1, dw_min_std=0.05,
                                **{**NO_D2D, "dw_min_dtod": 0.3})
    meas = read_measurements(str(write_curve(tmp_path / "d.csv", device, devices=12)), -1.0, 1.0, -1.0, 1.0)
    assert len(meas.devices) == 12
    result = fit(meas, "softbounds")
    assert 0.15 < result.params["dw_min_dtod"] < 0.5


def test_signed_pulse_counts_fit_like_single_pulses(tmp_path):
    """Rows of 5 pulses (reads only every 5th pulse) give the same device as single pulses."""
    rows = synthetic_measurements(TRUE["softbounds"], cycles=8, pulses=100)
    single = pd.DataFrame(rows, columns=["pulse", "conductance", "trace", "device"])
    grouped = pd.concat([single.iloc[:1], single.iloc[5::5].assign(pulse=lambda f: 5 * f["pulse"])])
    grouped.to_csv(tmp_path / "counts.csv", index=False)
    result = fit(read_measurements(str(tmp_path / "counts.csv"), -1.0, 1.0, -1.0, 1.0), "softbounds")
    assert result.params["dw_min"] == pytest.approx(0.02, rel=0.1)
    assert abs(result.params["up_down"] + 0.2) < 0.05


# NeuroSim's normalized A (formula.cpp getParamA's table; documents/Nonlinearity-NormA.htm)
NEUROSIM_TABLE = [(0.01, 126.268958, 1e-5), (0.02, 63.134314, 1e-5), (0.1, 12.625807, 1e-5), (0.5, 2.519877, 1e-5),
                  (1.0, 1.251653, 1e-5), (1.51, 0.8195, 1e-3), (3.01, 0.3853, 1e-3), (4.51, 0.2266, 1e-3),
                  (6.01, 0.1351, 1e-3), (7.51, 0.0702, 2e-3)]


@pytest.mark.parametrize("nl, a, tol", NEUROSIM_TABLE)
def test_normalized_a_reproduces_neurosims_table(nl, a, tol):
    assert normalized_a(nl) == pytest.approx(a, rel=tol)
    assert normalized_a(-nl) == pytest.approx(-a, rel=tol)


@pytest.mark.parametrize("text", ["neurosim-agsi", "neurosim:nl_ltp=1.0,nl_ltd=1.5,levels=64,c2c=0.01,onoff=20"])
def test_neurosim_device_reproduces_its_conductance_curve(text):
    """The piecewise device (noise off), pulsed from G_min to G_max and back, follows NeuroSim's
    G(P) = B (1 - exp(-P/A)) + G_min at every pulse (A = a(NL) P_max, B from G(P_max) = G_max)."""
    import torch
    from aihwkit.simulator.tiles import AnalogTile

    definition = neurosim_definition(text)
    p = definition["source"]["parameters"]
    device = D.PiecewiseStepDevice(**definition["device"]["params"])
    tile = AnalogTile(1, 1, fit_config(device))
    tile.set_learning_rate(1)
    for sign, nl, levels, start in ((1, p["nl_ltp"], int(p["levels_ltp"]), 0.0), (-1, p["nl_ltd"], int(p["levels_ltd"]), 1.0)):
        tile.set_weights(torch.tensor([[2 * start - 1]]))
        A = normalized_a(nl) * levels
        B = 1 / (1 - math.exp(-levels / A))
        position = -A * math.log(1 - start / B)  # the start's pulse position on the curve
        for k in range(1, levels + 1):
            tile.update(torch.tensor([float(sign)]), -torch.ones(1))
            g = (tile.tile.get_weights()[0, 0].item() + 1) / 2
            assert g == pytest.approx(B * (1 - math.exp(-(position + sign * k) / A)), abs=2e-4), (sign, k)
        assert g == pytest.approx(1.0 - start, abs=2e-4)  # levels pulses span the range


def test_neurosim_conductance_after_is_the_inverse_walk():
    g = np.array([0.0])
    for _ in range(97):
        g = conductance_after(g, 1, 2.4, 97)
    assert g[0] == pytest.approx(1.0, abs=1e-9)
    assert conductance_after(np.array([0.3]), 0, -4.88, 100)[0] == pytest.approx(0.3)


def test_neurosim_devices_are_listed_and_parse():
    result = runner.invoke(app, ["devices"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "neurosim-agsi" in result.output and "neurosim-v2" in result.output
    spec = parse_device("neurosim:nl_ltp=2,nl_ltd=-2,levels=50,c2c=0.02", update="mp")
    assert spec.describe()["aihwkit"] == "PiecewiseStepDevice"


def _fit_cli(tmp_path, model="softbounds", *extra):
    csv = write_curve(tmp_path / "curve.csv", TRUE["softbounds"], scale=1e-6)
    out = tmp_path / "mydevice.json"
    return runner.invoke(app, ["devices", "fit", str(csv), "--model", model, "--out", str(out), *extra],
                         terminal_width=200), out


def test_devices_fit_writes_a_device_file_plot_and_table(tmp_path):
    result, out = _fit_cli(tmp_path, "softbounds", "--compare-presets")
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["device"]["class"] == MODELS["softbounds"]
    assert record["fit"]["conductance_range"][1] == pytest.approx(1e-6 * 1.0, rel=0.5)
    assert set(record["fit"]["preset_rmse"]) >= {"rram", "ecram"}
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "dw_min" in result.output and "states" in result.output and "presets on the same data" in result.output
    again = runner.invoke(app, ["devices", "fit", str(tmp_path / "curve.csv"), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output  # nothing written is lost
    assert json.loads(out.read_text()) == record


def test_a_fitted_device_trains_and_its_run_resumes_without_the_file(tmp_path):
    result, out = _fit_cli(tmp_path)
    assert result.exit_code == 0, result.output
    for rule in ("bp", "dp_adjoint"):
        runs = tmp_path / f"runs-{rule}"
        trained = runner.invoke(app, ["train", "--device", str(out), "--rule", rule, "--epochs", "1",
                                      "--out", str(runs), "--json"])
        assert trained.exit_code == 0, trained.output
        summary = json.loads(trained.output.strip().splitlines()[-1])
        assert summary["status"] == "finished" and summary["test_accuracy"] > 0.3
    run_dir = next(runs.iterdir())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["device_definition"] == json.loads(out.read_text())
    assert run_dir.name.split("-")[3] == "mydevice"
    out.unlink()
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "--epochs", "2", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output.strip().splitlines()[-1])["epochs"] == 2


def _csv(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("pulses,G\n1,0.1\n-1,0.2\n", "has no column pulse, conductance"),
    ("pulse,conductance\n1,0.1\n-1,abc\n1,0.3\n", "line 3: conductance = 'abc' is not a finite number"),
    ("pulse,conductance\n1,0.1\n-1,\n1,0.3\n", "line 3: conductance"),
    ("pulse,conductance\n0,0.1\n1,0.2\n1,0.3\n", "has only up pulses"),
    ("pulse,conductance\n0,0.1\n1,0.2\n-1,0.1\n", "reads after pulses for 4 parameters"),
    ("pulse,conductance\n0,0.1\n1,0.1\n-1,0.1\n", "the conductance does not change"),
    ("pulse,conductance\n0.5,0.1\n1,0.2\n-1,0.1\n", "whole signed pulse counts"),
])
def test_bad_measurement_files_are_one_line_errors(tmp_path, text, message):
    result = runner.invoke(app, ["devices", "fit", _csv(tmp_path, text), "--out", str(tmp_path / "d.json")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize("content, message", [
    ({"format": "aihwkit-1", "device": {}}, "not a hilt device file"),
    ({"format": "hilt-device-1", "device": {"class": "SoftBoundsDevice", "params": {}}, "colour": 1}, "unknown keys colour"),
    ({"format": "hilt-device-1", "device": {"class": "SoftBoundsDevice", "params": {"dw_mni": 0.1}}}, "unknown SoftBoundsDevice parameters dw_mni"),
    ({"format": "hilt-device-1", "device": {"class": "IdealDevice", "params": {}}}, "is not supported"),
    ({"format": "hilt-device-1", "device": {"class": "SoftBoundsDevice", "params": {"dw_min": "x"}}}, "not a finite number"),
])
def test_bad_device_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(content))
    result = runner.invoke(app, ["train", "--device", str(path), "--epochs", "1", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["train", "--device", str(tmp_path / "nope.json"), "--epochs", "1"])
    assert missing.exit_code == 2 and "no such device file" in missing.output


@pytest.mark.parametrize("name", ["neurosim-agsi", "neurosim-v2"])
def test_neurosim_c2c_matches_neurosim_over_a_sweep(name):
    """NeuroSim adds c2c x range to every pulse; aihwkit's piecewise device draws dw_min_std x the
    local step. The mapping: summed over a full sweep's pulses, the variances agree; measured on
    4 000 aihwkit cells, one pulse from three states delivers dw_min_std x step (what the sum
    assumes)."""
    import torch
    from aihwkit.simulator.tiles import AnalogTile

    from hilt.devices.neurosim import neurosim_parameters, sweep_steps

    p = neurosim_parameters(name)
    params = neurosim_definition(name)["device"]["params"]
    steps, std = sweep_steps(p), params["dw_min_std"]
    assert np.sum((std * steps) ** 2) == pytest.approx(len(steps) * (p["c2c"] * 2.0) ** 2)
    cfg = fit_config(D.PiecewiseStepDevice(**params))
    cfg.device.dw_min_std = std
    n = 4000
    tile = AnalogTile(1, n, cfg)
    tile.set_learning_rate(1)
    for w0 in (-0.6, 0.0, 0.6):
        tile.set_weights(torch.full((1, n), w0))
        tile.update(torch.ones(n), -torch.ones(1))
        change = tile.tile.get_weights()[0].numpy() - w0
        delivered = change.std()
        noise_free = D.PiecewiseStepDevice(**{**params, "dw_min_std": 0.0})
        t0 = AnalogTile(1, 1, fit_config(noise_free))
        t0.set_learning_rate(1)
        t0.set_weights(torch.tensor([[w0]]))
        t0.update(torch.ones(1), -torch.ones(1))
        step = t0.tile.get_weights()[0, 0].item() - w0
        assert delivered == pytest.approx(std * step, rel=0.1), (w0, delivered, std * step)


def test_devices_plot_draws_devices_side_by_side(tmp_path):
    out = tmp_path / "devices.png"
    result = runner.invoke(app, ["devices", "plot", "rram", "neurosim-v2", "--pulses", "40", "--cycles", "1",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000 and "rram: 80 pulses x 3 devices" in result.output
    again = runner.invoke(app, ["devices", "plot", "rram", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output and out.stat().st_size > 10_000
    from hilt.devices.response import pulse_response

    response = pulse_response("rram", update="ttv2", pulses=20, cycles=1)
    assert response.weights.shape == (41, 3) and "--update ttv2" in response.label
    assert pulse_response("neurosim-v2", pulses=10, cycles=1).median_step(1) > 0
    for args, message in ((["nope"], "unknown device"), (["rram", "--out", str(tmp_path / "x.txt")], ".png, .pdf or .svg"),
                          (["exact"], "no pulse response"), (["rram", "--cycles", "0"], "--cycles must be in")):
        bad = runner.invoke(app, ["devices", "plot", *args, "--out", str(tmp_path / "y.png")] if "--out" not in args
                            else ["devices", "plot", *args])
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)


def test_non_accumulating_choice_is_checked(tmp_path):
    result = runner.invoke(app, ["devices", "fit", str(GONG), "--model", "piecewise", "--non-accumulating", "both",
                                 "--out", str(tmp_path / "g.json")])
    assert result.exit_code == 2 and "allowed: write, read" in result.output
    assert not (tmp_path / "g.json").exists()


def test_a_device_file_with_a_long_name_trains(tmp_path):
    """The run folder is named after the device file: a name near the file-name limit is cut, with a
    hash of the whole label, instead of failing as if --out were wrong."""
    path = tmp_path / ("d" * 240 + ".json")
    path.write_text(json.dumps({"format": "hilt-device-1", "device": {"class": "SoftBoundsDevice", "params": {"dw_min": 0.01}}}))
    result = runner.invoke(app, ["train", "--device", str(path), "--epochs", "1", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert len(run.name) < 140 and json.loads((run / "config.json").read_text())["device"] == str(path)
