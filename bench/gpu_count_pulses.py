"""For a machine with a GPU: hilt's expected-pulse model (analog/costs.py) against aihwkit's own
pulse counters, which exist on CUDA tiles only (PulsedDevice.count_pulses,
`tile.tile.get_pulse_counters()`).

    python bench/gpu_count_pulses.py [--repeats 200]

For each setting (BL capped or not, update management on or off) it updates a CUDA tile of a
noise-free constant-step device `--repeats` times with the same rows and compares the counted
pulses with the model's expected coincidences (their ratio should be 1 within a few percent).
Not run in the tests or CI: it needs CUDA.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hilt.analog.costs import expected_pulses

DW = 0.001


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (aihwkit counts pulses on CUDA tiles only)")
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.configs.devices import ConstantStepDevice
    from aihwkit.simulator.presets.utils import PresetUpdateParameters
    from aihwkit.simulator.tiles import AnalogTile

    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (8, 32)).astype(np.float32)
    for bl, lr, d_scale, management in [(31, 0.01, 1.0, True), (5, 0.01, 3.0, True), (10, 0.01, 1.0, False)]:
        d = (rng.uniform(0.1, 1.0, (8, 16)) * d_scale).astype(np.float32)
        device = ConstantStepDevice(dw_min=DW, dw_min_std=0.0, dw_min_dtod=0.0, up_down=0.0, up_down_dtod=0.0,
                                    w_max=100.0, w_min=-100.0, w_max_dtod=0.0, w_min_dtod=0.0, count_pulses=True)
        up = PresetUpdateParameters()
        up.desired_bl, up.update_management, up.update_bl_management = bl, management, management
        tile = AnalogTile(16, 32, SingleRPUConfig(device=device, update=up)).cuda()
        tile.set_learning_rate(lr)
        xt, dt = torch.tensor(x).cuda(), torch.tensor(-d).cuda()
        for _ in range(args.repeats):
            tile.update(xt, dt)
        counted = float(tile.tile.get_pulse_counters().abs().sum())
        model = args.repeats * expected_pulses(x, d, lr, DW, bl, management, management)[0]
        print(f"BL {bl}, lr {lr}, d x{d_scale}, management {management}: aihwkit counted {counted:.0f}, "
              f"model {model:.0f}, ratio {counted / model:.4f}", flush=True)


if __name__ == "__main__":
    main()
