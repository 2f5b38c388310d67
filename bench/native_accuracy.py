"""Acceptance check: hilt's bp vs aihwkit's own AnalogSGD training, same MLP and presets.

    python bench/native_accuracy.py --devices exact,ideal,rram --seeds 0,1,2 --epochs 30
    python bench/native_accuracy.py --devices rram,ecram --updates sgd,mp,ttv2,c-ttv2,agad \
        --dataset mnist5k --model cnn:8-16 --epochs 2 --seeds 0,1 --out results/native_accuracy_cnn.csv

Prints one row per device and update algorithm (mean +- std over seeds) and writes results/native_accuracy.csv.
The exact device has no aihwkit counterpart; its native column trains on the `ideal` aihwkit
config (perfect IO, float update), the same float math through aihwkit.

--same-init starts native from the weights hilt programmed (read back from its tiles) instead of
aihwkit's own init: a paired comparison, fair only where programming adds no write noise (pcm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


from hilt.devices import parse_device
from hilt.experiments.reference.native import train_native
from hilt.experiments.run.files import write_csv
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="exact,ideal,rram,rram-mp,rram-ttv2,ecram,pcm")
    ap.add_argument("--updates", default="sgd", help="update algorithms (--update), e.g. sgd,mp,ttv2,c-ttv2,agad")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the dataset's")
    ap.add_argument("--model", default=None, help="default: the dataset's MLP")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--same-init", action="store_true", help="native starts from hilt's initial weights")
    ap.add_argument("--out", default="results/native_accuracy.csv")
    args = ap.parse_args()
    rows = []
    cases = [(d, u) for d in args.devices.split(",") for u in args.updates.split(",") if d != "exact" or u == "sgd"]
    for device, update in cases:
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = TrainConfig(dataset=args.dataset, device=device, update=None if update == "sgd" else update,
                              model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, seed=seed, out="results/runs/native_accuracy")
            setup = build(cfg)
            init = [np.asarray(b.crossbar.weights()) for b in setup.net.blocks] if args.same_init else None
            hilt = train(setup)
            spec = parse_device("ideal", seed=seed) if device == "exact" else cfg.device_spec()
            native = train_native(setup.net, spec, setup.data, args.epochs, setup.cfg.batch_size, args.lr, seed,
                                  init_weights=init)
            rows.append({"device": device, "update": spec.update, "seed": seed, "hilt": hilt["test_accuracy"],
                         "hilt_exact_readout": hilt["test_accuracy_exact_readout"], "native": native["test_accuracy"],
                         "native_init": "hilt" if args.same_init else "aihwkit",
                         "hilt_s": hilt["wall_time_s"], "native_s": native["wall_time_s"]})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    write_csv(Path(args.out), frame)
    table = frame.groupby(["device", "update"], sort=False).agg(
        hilt=("hilt", "mean"), hilt_std=("hilt", "std"), native=("native", "mean"), native_std=("native", "std"),
        hilt_s=("hilt_s", "mean"), native_s=("native_s", "mean"))
    table["diff_points"] = 100 * (table.hilt - table.native)
    table["time_ratio"] = table.hilt_s / table.native_s
    print(table.round(4).to_string())
    print("hilt within 1 point of native (or better) on:",
          [d for d, r in table.iterrows() if r.diff_points >= -1.0 or np.isnan(r.diff_points)])


if __name__ == "__main__":
    main()
