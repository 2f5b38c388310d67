"""Per-update parity with aihwkit on every preset: the numbers behind tests/test_parity.py.

    python bench/update_parity.py --draws 40 --repeats 3

One layer (16 x 24 + bias, batch 8), the same weights, x and d through hilt's AnalogCrossbar and
aihwkit's AnalogLinear + AnalogSGD, 5 updates per draw. Per preset: z of the per-weight means
(about 1 when both sides draw from one distribution), the ratio of the per-weight spreads, and the
fastest draw's time per update on each side. Writes results/update_parity.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


from hilt.devices import parse_device
from hilt.devices.presets import PRESETS
from hilt.experiments.reference.native import PARITY_LR, PARITY_UPDATES, parity_case, parity_stats, update_parity
from hilt.experiments.run.files import write_csv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default=",".join(name for name in PRESETS if name != "exact"))
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/update_parity.csv")
    args = ap.parse_args()
    rows = []
    for device in args.devices.split(","):
        for repeat in range(args.repeats):
            W0, x, d = parity_case(seed=repeat)
            r = update_parity(parse_device(device, seed=0), W0, x, d, PARITY_LR, draws=args.draws, updates=PARITY_UPDATES)
            rows.append({"device": device, "repeat": repeat, **parity_stats(r),
                         "hilt_ms_per_update": 1e3 * r["hilt_s"].min() / PARITY_UPDATES,
                         "native_ms_per_update": 1e3 * r["native_s"].min() / PARITY_UPDATES})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    write_csv(Path(args.out), frame)
    print(frame.groupby("device", sort=False).mean(numeric_only=True).drop(columns="repeat").round(3).to_string())


if __name__ == "__main__":
    main()
