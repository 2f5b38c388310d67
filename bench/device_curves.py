"""Pulse-response curves for `hilt devices fit`: what aihwkit's own device models answer to up and
down pulse trains, noise on, written in the CSV format `devices fit` reads (conductance in
siemens, G = G_MIN + (w + 1) / 2 (G_MAX - G_MIN)). The README's worked example and the
"Bring your own device" results use them.

    python bench/device_curves.py --device softbounds --cycles 5 --pulses 100 --out curve.csv
    python bench/device_curves.py --device neurosim-agsi --cycles 5 --pulses 100 --out agsi.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from aihwkit.simulator.configs.devices import SoftBoundsDevice

from hilt.devices.device_file import build_device
from hilt.devices.fitting import synthetic_measurements
from hilt.devices.neurosim import NEUROSIM_DEVICES, neurosim_definition
from hilt.experiments.run.files import write_csv

G_MIN, G_MAX = 1e-6, 10e-6
# an asymmetric soft-bounds device with 20 % cycle-to-cycle and 10 % device-to-device spread
CURVES = {"softbounds": lambda: SoftBoundsDevice(dw_min=0.02, up_down=-0.15, w_min=-1.0, w_max=1.0, dw_min_std=0.2,
                                                 dw_min_dtod=0.1, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="softbounds", choices=[*CURVES, *NEUROSIM_DEVICES])
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--pulses", type=int, default=100, help="up pulses, then as many down, per cycle")
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    device = CURVES[args.device]() if args.device in CURVES else build_device(neurosim_definition(args.device))
    rows = synthetic_measurements(device, args.cycles, args.pulses, args.devices, args.seed)
    frame = pd.DataFrame(rows, columns=["pulse", "conductance", "trace", "device"])
    frame["conductance"] = G_MIN + (frame["conductance"] + 1) / 2 * (G_MAX - G_MIN)
    write_csv(Path(args.out), frame)


if __name__ == "__main__":
    main()
