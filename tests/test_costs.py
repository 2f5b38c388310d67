"""The hardware cost of learning: crossbar counters, the expected-pulse model, estimates."""

import json
import math

import numpy as np
import pytest

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.costs import COUNT_KEYS, expected_pulses
from hilt.data.pairs import Pairs, next_row
from hilt.devices import parse_device
from hilt.experiments.measure.cost import energy_to_accuracy, estimate, load_cost_table
from hilt.rules import make_rule
from hilt.rules.dual_prop import schedule_order
from helpers import network, runner
from hilt.cli import app

DW = 0.001
CONSTANT = {"format": "hilt-device-1", "name": "constant",
            "device": {"class": "ConstantStepDevice",
                       "params": {"dw_min": DW, "dw_min_std": 0.0, "dw_min_dtod": 0.0, "up_down": 0.0, "up_down_dtod": 0.0,
                                  "w_max": 10.0, "w_min": -10.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0}}}


@pytest.mark.parametrize("bl, lr, d_scale", [(31, 0.01, 1.0), (5, 0.002, 1.0), (5, 0.01, 3.0), (1, 0.01, 1.0)])
def test_expected_pulses_match_the_device(bl, lr, d_scale):
    """On a noise-free constant-step device, x and d of one sign, the weight change in dw_min is the
    number of pulses: its mean over many updates matches the model within a few percent, with the
    pulse train at, below and above BL (update and BL management on, the presets' setting)."""
    spec = parse_device("constant.json", [f"update_bl={bl}", "weight_scaling_omega=0"], definition=CONSTANT)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (5, 8)).astype(np.float32)
    d = (rng.uniform(0.1, 1.0, (5, 6)) * d_scale).astype(np.float32)
    xbar = AnalogCrossbar(6, 8, False, spec)
    xbar.program(np.zeros((6, 8), np.float32))
    xbar.take_counts()
    repeats = 200
    for _ in range(repeats):
        xbar.update(x, -d, lr)  # W -= lr (-d) x^T: every weight goes up
    steps = xbar.weights().sum() / DW
    counts = xbar.take_counts()
    counted = counts["expected_pulses"]
    assert steps == pytest.approx(counted, rel=0.03)
    model, _, up = expected_pulses(x, d, lr, DW, bl, True, True)
    assert counted == pytest.approx(repeats * model)
    assert counts["expected_pulses_up"] == pytest.approx(counted) and counts["expected_pulses_down"] == pytest.approx(0, abs=1e-6 * counted)


def test_pulses_up_and_down_match_the_device():
    """x > 0 and d of either sign per output: the rows of W with d_j < 0 only go up, those with
    d_j > 0 only down, so the weights tell the two counts apart."""
    spec = parse_device("constant.json", ["update_bl=31", "weight_scaling_omega=0"], definition=CONSTANT)
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 1.0, (5, 8)).astype(np.float32)
    sign = np.array([1, -1, 1, -1, -1, 1], np.float32)
    d = (rng.uniform(0.1, 1.0, (5, 6)) * sign).astype(np.float32)
    xbar = AnalogCrossbar(6, 8, False, spec)
    xbar.program(np.zeros((6, 8), np.float32))
    xbar.take_counts()
    for _ in range(200):
        xbar.update(x, d, 0.01)
    w = np.asarray(xbar.weights()) / DW
    counts = xbar.take_counts()
    assert w[sign < 0].sum() == pytest.approx(counts["expected_pulses_up"], rel=0.03)
    assert -w[sign > 0].sum() == pytest.approx(counts["expected_pulses_down"], rel=0.03)
    assert counts["expected_pulses_up"] + counts["expected_pulses_down"] == pytest.approx(counts["expected_pulses"])


def reference_pulses(x, d, lr, dw_min, desired_bl, management, bl_management, bias_input):
    """The model spelled out line by line: every x-line's and d-line's firing probability, clipped;
    a coincidence of lines of opposite signs steps up."""
    pulses = slots = up = 0.0
    rate = lr / dw_min
    for xs, ds in zip(x.astype(np.float64), d.astype(np.float64)):
        if bias_input:
            xs = np.append(xs, 1.0)
        xr, dr = np.abs(xs), np.abs(ds)
        k = rate * xr.max() * dr.max()
        if k == 0:
            continue
        bl = min(math.ceil(k), desired_bl) if bl_management else desired_bl
        if not management:
            a = b = math.sqrt(rate / bl)
        elif k <= bl:  # A max|x| = B max|d|
            a = math.sqrt(rate / bl * dr.max() / xr.max())
            b = rate / bl / a
        else:
            a, b = 1 / xr.max(), rate * xr.max() / bl
        p, q = np.minimum(1, a * xr), np.minimum(1, b * dr)
        pulses += bl * p.sum() * q.sum()
        up += bl * (p[xs > 0].sum() * q[ds < 0].sum() + p[xs < 0].sum() * q[ds > 0].sum())
        slots += bl
    return pulses, slots, up


@pytest.mark.parametrize("management, bl_management", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("bias_input", [False, True])
def test_expected_pulses_equal_the_model_spelled_out(management, bl_management, bias_input):
    """Balanced, capped and unmanaged rows, signs mixed, rows of zeros, narrow and wide rows."""
    rng = np.random.default_rng(1)
    for trial in range(40):
        rows, n_in, n_out = rng.integers(1, 12), rng.integers(1, 70), rng.integers(1, 40)
        x = (rng.standard_normal((rows, n_in)) * rng.choice([0.01, 0.3, 3.0])).astype(np.float32)
        d = (rng.standard_normal((rows, n_out)) * rng.choice([0.001, 0.03, 1.0])).astype(np.float32)
        x[rng.integers(rows)] *= rng.integers(0, 2)
        d[rng.integers(rows)] *= rng.integers(0, 2)
        args = (float(rng.choice([0.001, 0.01, 0.1])), DW, int(rng.choice([1, 5, 31])), management, bl_management)
        pulses, slots, up = expected_pulses(x, d, *args, bias_input=bias_input)
        want_pulses, want_slots, want_up = reference_pulses(x, d, *args, bias_input)
        assert pulses == pytest.approx(want_pulses, rel=1e-5, abs=1e-9) and slots == want_slots
        assert up == pytest.approx(want_up, rel=1e-5, abs=1e-9)


def test_expected_pulse_model_is_the_asked_change_while_nothing_clips():
    x, d = np.array([[0.5, 0.25, 1.0]]), np.array([[0.25, -0.1]])
    pulses, slots, up = expected_pulses(x, d, 0.01, DW, 31, True, True)
    assert pulses == pytest.approx(0.01 * np.abs(d).sum() * np.abs(x).sum() / DW)
    assert up == pytest.approx(0.01 * 0.1 * np.abs(x).sum() / DW)  # d_2 < 0: its row steps up
    assert slots == math.ceil(0.01 * 1.0 * 0.25 / DW) == 3


def mlp_counts(rule_name, device="exact", batch=4, model="mlp:6-4-5", shape=(6,)):
    rule = make_rule(rule_name)
    net = network(model, shape, rule, device=device, readout=not rule.self_supervised)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    y = rng.integers(0, 5, batch) if not rule.self_supervised else None
    net.take_counts()
    if rule.self_supervised:
        x = Pairs(x, x[::-1].copy(), next_row(2 * batch))
    rule.step(net, x, y, 0.01)
    return net, net.take_counts()


def test_bp_counts_by_hand_mlp():
    """mlp:6-4-5, batch 4, exact path: 2 layers read forward, the upper one read transposed, 2
    updates of 4 rows; MACs out x (in + 1) per row and read."""
    _, c = mlp_counts("bp")
    sizes = [(4, 6), (5, 4)]  # (out, in) per layer, each with a bias column
    macs = sum(o * (i + 1) for o, i in sizes)
    assert c["forward_reads"] == 2 * 4 and c["transposed_reads"] == 1 * 4
    assert c["update_calls"] == 2 and c["update_rows"] == 2 * 4
    assert c["digital_macs"] == 4 * macs + 4 * sum(o * (i + 1) for o, i in sizes[1:]) + 4 * macs
    assert c["dac_conversions"] == c["adc_conversions"] == c["expected_pulses"] == c["cell_reads"] == 0


def test_dfa_counts_by_hand_mlp():
    """DFA: the 2 layers read forward, the hidden layer's feedback matrix F_1 (output 5 -> 4) read
    forward once, no transposed reads, 2 updates."""
    _, c = mlp_counts("dfa")
    assert c["forward_reads"] == (2 + 1) * 4 and c["transposed_reads"] == 0
    assert c["update_calls"] == 2 and c["update_rows"] == 8


def test_dp_adjoint_counts_by_hand_mlp():
    """dp_adjoint (fwbw, 1 pass): one feed-forward read per layer, then per scheduled layer k one
    forward read and, below the top, one transposed read of layer k + 1 once it has an error."""
    _, c = mlp_counts("dp_adjoint")
    order = schedule_order("fwbw", 1, 2)
    seen, transposed = set(), 0
    for k in order:
        transposed += k < 2 and (k + 1) in seen
        seen.add(k)
    assert c["forward_reads"] == (2 + len(order)) * 4
    assert c["transposed_reads"] == transposed * 4 == 4
    assert c["update_calls"] == 2


def test_pc_counts_by_hand_mlp():
    """pc (iPC, T = 8 inference steps): the feed-forward trace and the first errors read each layer
    forward, then every step reads the upper layer transposed, every layer forward (new errors)
    and updates every layer."""
    _, c = mlp_counts("pc")
    T, L, B = 8, 2, 4
    assert c["forward_reads"] == (L + L + T * L) * B
    assert c["transposed_reads"] == T * (L - 1) * B
    assert c["update_calls"] == T * L and c["update_rows"] == T * L * B


def test_clapp_pp_counts_by_hand_mlp():
    """clapp_pp on 4 pairs (N = 8 rows, both views): every layer read forward on the N rows, and
    its lateral matrix B^l read forward on the N contexts; no transposed reads; each layer and
    each B^l updated once with N rows."""
    _, c = mlp_counts("clapp_pp")
    L, N = 2, 8
    assert c["forward_reads"] == 2 * L * N and c["transposed_reads"] == 0
    assert c["update_calls"] == 2 * L and c["update_rows"] == 2 * L * N


def test_conv_counts_by_hand():
    """cnn:3-4 on 2 x 8 x 8: a conv layer's read has batch x output positions rows (im2col)."""
    net, c = mlp_counts("bp", model="cnn:3-4", shape=(2, 8, 8), batch=2)
    rows, shape = [], (2, 8, 8)
    for block in net.blocks:
        out = block.output_shape(shape)
        rows.append(2 * (int(np.prod(block.layer.output_shape(shape)[1:])) if len(out) == 3 else 1))
        shape = out
    assert c["forward_reads"] == sum(rows)
    assert c["update_rows"] == sum(rows)
    assert c["transposed_reads"] == sum(rows[1:])


class Recorder:
    """An independent count: rows seen by the backend hooks of every crossbar."""

    def __init__(self, net):
        self.rows = {"forward_reads": 0, "transposed_reads": 0}
        for crossbar in [*net.crossbars(), *net.aux.values()]:
            self.wrap(crossbar, "_forward", "forward_reads")
            self.wrap(crossbar, "_backward", "transposed_reads")

    def wrap(self, crossbar, hook, key):
        inner = getattr(crossbar, hook)

        def counted(a, *rest):
            self.rows[key] += len(a)
            return inner(a, *rest)

        setattr(crossbar, hook, counted)


@pytest.mark.parametrize("rule_name", ["bp", "dp_adjoint", "dfa", "clapp_pp", "pc"])
@pytest.mark.parametrize("model, shape", [("mlp:6-4-5", (6,)), ("cnn:3-4", (2, 8, 8))])
def test_counts_equal_an_independent_count_for_every_rule(rule_name, model, shape):
    rule = make_rule(rule_name)
    net = network(model, shape, rule, device="rram", readout=not rule.self_supervised)
    recorder = Recorder(net)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    net.take_counts()
    if rule.self_supervised:
        x, y = Pairs(x, x[::-1].copy(), next_row(8)), None
    else:
        y = rng.integers(0, 5, 4)
    rule.step(net, x, y, 0.01)
    c = net.take_counts()
    assert c["forward_reads"] == recorder.rows["forward_reads"] > 0
    assert c["transposed_reads"] == recorder.rows["transposed_reads"]
    assert c["update_rows"] > 0 and c["expected_pulses"] > 0 and c["pulse_trains"] == c["update_rows"]
    assert c["dac_conversions"] > 0 and c["adc_conversions"] > 0


def test_tiled_reads_convert_once_per_tile():
    spec = parse_device("rram", ["tile_size=4"])
    xbar = AnalogCrossbar(6, 10, True, spec)  # 2 x 3 tiles
    xbar.program(np.zeros((6, 11), np.float32))
    xbar.take_counts()
    xbar.forward(np.ones((3, 10), np.float32))
    c = xbar.take_counts()
    bits = spec.describe()["forward_io"]["dac_bits"]  # rram's DAC: 7 bits, each a one-bit conversion
    assert bits == 7
    assert c["dac_conversions"] == 3 * 11 * 2 * bits and c["adc_conversions"] == 3 * 6 * 3
    xbar.backward(np.ones((3, 6), np.float32))
    c = xbar.take_counts()
    assert c["dac_conversions"] == 3 * 6 * 3 * bits and c["adc_conversions"] == 3 * 11 * 2


def test_summed_counts_its_accumulator_and_fewer_trains():
    spec = parse_device("rram", update="summed")
    xbar = AnalogCrossbar(3, 10, True, spec)
    xbar.program(np.full((3, 11), 0.1, np.float32))
    xbar.take_counts()
    rng = np.random.default_rng(1)
    xbar.update(rng.normal(size=(50, 10)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32), 0.01)
    c = xbar.take_counts()
    assert c["update_rows"] == 50 and c["digital_macs"] == 50 * 3 * 11
    assert c["pulse_trains"] == 3  # one per output row, fewer than the 11 columns or the 50 rows


@pytest.mark.parametrize("update, fast_lr, d_scale, bias", [
    ("tt", 1.0, 0.01, False), ("tt", 0.0, 1.0, True),  # fast_lr 0: the tile's lr
    ("ttv2", 0.05, 0.2, False),  # build_config's ttv2 around a device file: auto_scale off, fast_lr
    ("c-ttv2", 1.0, 0.01, True), ("c-ttv2", 2.0, 0.01, False)])  # auto-scaled by running maxima
def test_tiki_taka_fast_device_pulses_match_the_device(update, fast_lr, d_scale, bias):
    """The Tiki-Taka family pulses the rows onto its fast device A (its transfers read A and write
    the slow device): with choppers off, A's change in dw_min on a noise-free constant-step device
    matches the counted expectation within a few percent (40-200 k pulses: their own noise is
    under 0.5 %). The rows change from update to update, which the auto-scaled ones follow."""
    spec = parse_device("constant.json", ["weight_scaling_omega=0", f"fast_lr={fast_lr}"]
                        + (["in_chop_prob=0"] if update == "c-ttv2" else []), update=update, definition=CONSTANT)
    xbar = AnalogCrossbar(6, 8, bias, spec)
    xbar.program(np.zeros((6, 8 + bias), np.float32))
    assert (xbar.tiles[0][0].rpu_config.device.__dict__.get("auto_scale", False) and fast_lr > 0) == \
        (update == "c-ttv2")
    sim = xbar.tiles[0][0].tile
    fast = list(sim.get_hidden_parameter_names()).index("hidden_weights_0")
    before = sim.get_hidden_parameters()[fast].numpy().copy()
    rng = np.random.default_rng(0)
    xbar.take_counts()
    for _ in range(200):
        x = rng.uniform(0.1, 1.0, (5, 8)).astype(np.float32) * rng.uniform(0.2, 1.0)
        d = (rng.uniform(0.1, 1.0, (5, 6)) * d_scale * rng.uniform(0.2, 1.0)).astype(np.float32)
        xbar.update(x, -d, 0.01)
    steps = (sim.get_hidden_parameters()[fast].numpy() - before).sum() / DW
    c = xbar.take_counts()
    assert steps > 30_000 and steps == pytest.approx(c["expected_pulses"], rel=0.03)
    assert c["pulse_trains"] == 200 * 5


def test_transfers_and_their_reads_on_a_tile_grid():
    """ttv2 transfers per row (units_in_mbatch off), on every tile; each reads one fast-device column."""
    spec = parse_device("rram", ["tile_size=4", "transfer_every=2"], update="ttv2")
    xbar = AnalogCrossbar(6, 10, True, spec)  # 2 x 3 tiles
    xbar.program(np.zeros((6, 11), np.float32))
    xbar.take_counts()
    rng = np.random.default_rng(0)
    xbar.update(rng.normal(size=(8, 10)).astype(np.float32), rng.normal(size=(8, 6)).astype(np.float32), 0.01)
    c = xbar.take_counts()
    transfers = 6 * 8 / 2
    assert c["transfers"] == transfers and c["transfer_reads"] == transfers
    per_tile = transfers / 6
    assert c["array_reads"] == per_tile and c["cell_reads"] == per_tile * 6 * 3
    assert c["dac_conversions"] == per_tile * 11 * 2 * 7 and c["adc_conversions"] == per_tile * 6 * 3
    assert c["pulse_trains"] == 8 * 6 and c["expected_pulses"] > 0


def test_estimate_and_energy_to_accuracy():
    table = load_cost_table()
    counts = dict.fromkeys(COUNT_KEYS, 0.0) | {"expected_pulses": 10.0, "expected_pulses_up": 6.0,
                                               "expected_pulses_down": 4.0, "digital_macs": 2.0, "pulse_slots": 3.0}
    costs = {k: v["value"] for k, v in table["costs"].items()}
    got = estimate(counts, table)
    assert got["energy_j"] == pytest.approx(6 * costs["pulse_up_j"] + 4 * costs["pulse_down_j"] + 2 * costs["digital_mac_j"])
    assert got["latency_s"] == pytest.approx(3 * costs["pulse_slot_s"])
    rows = [{"split": "test", "accuracy": 0.1}, {"split": "train", "energy_j": 1.0}, {"split": "test", "accuracy": 0.5},
            {"split": "train", "energy_j": 2.0}, {"split": "test", "accuracy": 0.9}]
    assert energy_to_accuracy(rows, 0.8) == 3.0 and energy_to_accuracy(rows, 0.95) is None
    old_run = [{"split": "test", "accuracy": 0.1}, {"split": "train"}, {"split": "test", "accuracy": 0.9}]
    assert energy_to_accuracy(old_run, 0.8) is None  # no estimates: not 0 J


def test_train_reports_costs_per_epoch_and_in_total(tmp_path):
    result = runner.invoke(app, ["train", "--device", "rram", "--epochs", "2", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    import pandas as pd

    metrics = pd.read_csv(next(tmp_path.iterdir()) / "metrics.csv")
    train = metrics[metrics.split == "train"]
    assert summary["costs"]["train"]["expected_pulses"] == pytest.approx(train.expected_pulses.sum())
    assert summary["train_energy_j"] == pytest.approx(train.energy_j.sum()) and summary["train_energy_j"] > 0
    assert (metrics[metrics.split == "test"].update_rows == 0).all()  # evaluation only reads


def test_the_default_costs_are_their_sources_arithmetic():
    """Each number of cost_table.json from the figures its source gives."""
    costs = {k: v["value"] for k, v in load_cost_table()["costs"].items()}
    # ISAAC Table I: 8 x 128 one-bit DACs at 4 mW, one input bit per 100 ns crossbar read
    assert costs["dac_conversion_j"] == pytest.approx(4e-3 * 100e-9 / (8 * 128), rel=0.01)
    # ISAAC Table I: 8 ADCs at 16 mW, each converting 128 bitlines per 100 ns read (1.28 GS/s)
    assert costs["adc_conversion_j"] == pytest.approx(16e-3 / 8 / (128 / 100e-9), rel=0.01)
    # NeuroSim RealDevice: V^2 G t, G the mean of 3.08 and 38.5 nS, 300 us pulses, LTP 3.2 V, LTD 2.8 V
    g = (3.08e-9 + 38.5e-9) / 2
    assert costs["pulse_up_j"] == pytest.approx(3.2**2 * g * 300e-6, rel=0.01)
    assert costs["pulse_down_j"] == pytest.approx(2.8**2 * g * 300e-6, rel=0.01)
    assert costs["cell_read_j"] == pytest.approx(0.5**2 * g * 5e-9, rel=0.01)


def test_a_table_of_one_pulse_price_still_reads(tmp_path):
    """A table written before pulses were priced by direction (pulse_j) prices both with it."""
    from hilt.experiments.measure.cost import check_cost_table

    table = load_cost_table()
    costs = table["costs"]
    costs["pulse_j"] = costs.pop("pulse_up_j")
    costs.pop("pulse_down_j")
    checked = check_cost_table(table, "old")["costs"]
    assert checked["pulse_up_j"] == checked["pulse_down_j"] == costs["pulse_j"]


def test_bad_cost_tables_are_one_line_errors(tmp_path):
    path = tmp_path / "cost.json"
    table = load_cost_table()
    table["costs"].pop("pulse_up_j")
    path.write_text(json.dumps(table))
    result = runner.invoke(app, ["train", "--cost", str(path), "--epochs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "missing pulse_up_j" in result.output
    missing = runner.invoke(app, ["train", "--cost", str(tmp_path / "nope.json"), "--epochs", "1"])
    assert missing.exit_code == 2 and "no such file" in missing.output
