"""Device presets and friendly overrides."""

import numpy as np
import pytest

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.devices import PARAMS, PRESETS, DeviceError, parse_device
from hilt.devices.presets import leaf_devices


@pytest.mark.parametrize("name", [p for p in PRESETS if p != "exact"])
def test_every_preset_builds_reads_and_updates(rng, name):
    xb = AnalogCrossbar(4, 6, True, parse_device(name, seed=3))
    xb.program((rng.normal(size=xb.shape) * 0.1).astype(np.float32))
    x = rng.uniform(0, 1, size=(3, 6)).astype(np.float32)
    assert xb.forward(x).shape == (3, 4)
    assert xb.backward(rng.normal(size=(3, 4)).astype(np.float32)).shape == (3, 6)
    xb.update(x, rng.normal(size=(3, 4)).astype(np.float32) * 0.1, 0.1)
    assert np.isfinite(xb.weights()).all()


def test_overrides_reach_the_aihwkit_config():
    spec = parse_device("rram", ["dw_min=0.01", "adc_bits=6", "dac_bits=5", "read_noise=0.03",
                                 "backward_read_noise=0.2", "update_bl=7", "w_max=0.8", "up_down=0.1"])
    cfg = spec.rpu_config()
    dev = leaf_devices(cfg.device)[0]
    assert dev.dw_min == 0.01 and dev.w_max == 0.8 and dev.w_min == -0.8 and dev.up_down == 0.1
    assert cfg.forward.out_res == pytest.approx(1 / 62) and cfg.backward.out_res == pytest.approx(1 / 62)
    assert cfg.forward.inp_res == pytest.approx(1 / 30)
    assert cfg.forward.out_noise == 0.03 and cfg.backward.out_noise == 0.2
    assert cfg.update.desired_bl == 7
    assert cfg.mapping.digital_bias is False


def test_compound_overrides_reach_inner_devices():
    for name in ("rram-mp", "rram-ttv2", "pcm"):
        cfg = parse_device(name, ["dw_min=0.004"]).rpu_config()
        assert all(d.dw_min == 0.004 for d in leaf_devices(cfg.device))


def test_io_override_on_perfect_preset_turns_on_only_that_effect():
    cfg = parse_device("ideal", ["read_noise=0.1"]).rpu_config()
    assert not cfg.forward.is_perfect and cfg.forward.out_noise == 0.1
    assert cfg.forward.inp_res == -1 and cfg.forward.out_res == -1


@pytest.mark.parametrize(
    "name,sets,message",
    [
        ("nope", [], "unknown device 'nope'; allowed: exact, ideal"),
        ("rram", ["foo=1"], "unknown key 'foo'; allowed: dw_min"),
        ("rram", ["dw_min"], "expected key=value"),
        ("rram", ["dw_min=abc"], "expected float"),
        ("rram", ["dw_min=-1"], "out of range"),
        ("rram", ["adc_bits=2.5"], "expected int"),
        ("rram", ["read_noise=nan"], "out of range"),
        ("exact", ["dw_min=0.1"], "takes no device parameters"),
        ("idealized", ["write_noise_std=0"], "no pulsed device parameter write_noise_std"),
    ],
)
def test_bad_device_input_is_one_clear_error(name, sets, message):
    with pytest.raises(DeviceError, match=message):
        parse_device(name, sets)


def test_write_noise_override_reaches_every_pulsed_device():
    from hilt.devices.presets import leaf_devices

    for name in ("rram", "rram-mp", "rram-ttv2"):
        assert parse_device(name).describe()["write_noise_std"] > 0
        leaves = leaf_devices(parse_device(name, ["write_noise_std=0"]).rpu_config().device)
        assert [d.write_noise_std for d in leaves] == [0.0] * len(leaves)


def test_describe_lists_effective_parameters():
    d = parse_device("rram", ["dw_min=0.005", "adc_bits=6"]).describe()
    assert d["dw_min"] == 0.005 and d["forward_io"]["adc_bits"] == 6
    assert set(PARAMS) >= {"dw_min", "dw_min_dtod", "dw_min_std", "write_noise_std", "up_down", "w_max", "dac_bits", "adc_bits",
                           "read_noise", "backward_read_noise", "update_bl"}


@pytest.mark.parametrize("device,key", [("rram", "dwmin_up"), ("pcm", "dwmin_up_0"), ("rram-mp", "dwmin_up"),
                                        ("rram-ttv2", "dwmin_up_1")])
@pytest.mark.parametrize("seed", [0, 5])
def test_seed_fixes_the_device_to_device_spread(seed, device, key):
    """Compound devices (pcm's unit cell, mixed precision, Tiki-Taka) seed their inner devices from
    their own construction_seed, single devices from theirs."""
    from aihwkit.simulator.tiles import AnalogTile

    def spread(s):
        return AnalogTile(6, 5, parse_device(device, seed=s).rpu_config()).get_hidden_parameters()[key].numpy()

    first = spread(seed)
    assert first.std() > 0  # there is a spread to fix
    np.testing.assert_array_equal(spread(seed), first)  # seed 0 included: aihwkit's 0 means "random"
    assert not np.array_equal(spread(seed + 1), first)
