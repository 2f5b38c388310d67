"""Where an analog epoch's time goes, per update algorithm: the whole epoch, and the part spent in
the crossbars' reads, transposed reads and updates.

    python bench/update_time.py --device rram --dataset mnist5k --model cnn:8-16 --epochs 1 \
        --updates sgd,summed,mp,ttv2,c-ttv2,agad

Every algorithm trains from the same seed (same init and data order). Times are wall seconds of
the calls into AnalogCrossbar's read / transposed read / update (the digital gradient of `summed`
is inside "update"). An epoch's update time depends on what the network does: on rram the
per-row network dies (d -> 0, nothing to pulse), which makes its updates cheap. So it also times
each layer's update on the same rows: those of one bp step from the initial weights
(`--repeats` updates each, the mean in ms). Writes two CSVs (`--out`, and `-rows` beside it).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd


from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.network import crossbar_factory
from hilt.experiments.run.files import write_csv
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.resume import open_run
from hilt.experiments.run.trainer import train

PHASES = {"_forward": "read_s", "_backward": "transposed_read_s", "update": "update_s",
          "update_groups": "update_s"}


def timed(spent: dict):
    """Patch AnalogCrossbar's primitives to add their wall time to `spent` (outermost call only)."""
    originals, depth = {}, [0]
    for name, column in PHASES.items():
        original = getattr(AnalogCrossbar, name)
        originals[name] = original

        def wrapper(self, *args, _original=original, _column=column, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[_column] += time.perf_counter() - start

        setattr(AnalogCrossbar, name, wrapper)
    return originals


def same_rows(args, updates: list[str]) -> pd.DataFrame:
    """Per layer and algorithm: the time of one update with the rows of a bp step at init."""
    setup = build(TrainConfig(dataset=args.dataset, model=args.model, device="exact", seed=args.seed, out="unused"))
    net, data = setup.net, setup.data
    x, y = data.x_train[: setup.cfg.batch_size], data.y_train[: setup.cfg.batch_size]
    signals = setup.rule.signals(net, x, y).blocks
    rows = []
    for k, (block, (g, cache)) in enumerate(zip(net.blocks, signals), 1):
        parts = list(block.layer.row_groups(block._g_z(g, cache), cache[0]))
        X, D = (np.concatenate(p) for p in zip(*parts))
        for update in updates:
            spec = TrainConfig(device=args.device, update=None if update == "sgd" else update).device_spec()
            xbar = crossbar_factory(spec)(block.crossbar.out_size, block.crossbar.in_size, block.crossbar.bias)
            xbar.program(np.asarray(block.crossbar.weights()))
            start = time.perf_counter()
            for _ in range(args.repeats):
                xbar.update(X, D, setup.cfg.lr)
            rows.append({"layer": k, "shape": f"{xbar.out_size}x{xbar.in_size}", "rows": len(X), "update": update,
                         "ms": round(1000 * (time.perf_counter() - start) / args.repeats, 2)})
    frame = pd.DataFrame(rows)
    frame["vs_sgd"] = (frame.ms / frame.groupby("layer").ms.transform("first")).round(2)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="rram")
    ap.add_argument("--updates", default="sgd,summed,mp,ttv2,c-ttv2,agad")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--model", default="cnn:8-16")
    ap.add_argument("--rule", default="bp")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/update_time.csv")
    args = ap.parse_args()
    rows = []
    for update in args.updates.split(","):
        cfg = TrainConfig(dataset=args.dataset, model=args.model, device=args.device, rule=args.rule,
                          update=None if update == "sgd" else update, epochs=args.epochs, seed=args.seed,
                          out="results/runs/update_time")
        setup = build(cfg)
        spent = defaultdict(float)
        originals = timed(spent)
        try:
            summary = train(setup, run=open_run(setup))
        finally:
            for name, original in originals.items():
                setattr(AnalogCrossbar, name, original)
        rows.append({"device": args.device, "update": update, "rule": args.rule, "model": setup.cfg.model,
                     "epochs": args.epochs, "test_accuracy": summary["test_accuracy"],
                     "wall_s": summary["wall_time_s"], **{c: round(spent[c], 3) for c in set(PHASES.values())}})
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    base = frame[frame["update"] == "sgd"]
    if len(base):
        frame["wall_vs_sgd"] = (frame.wall_s / float(base.wall_s.iloc[0])).round(2)
        frame["update_vs_sgd"] = (frame.update_s / float(base.update_s.iloc[0])).round(2)
    write_csv(Path(args.out), frame)
    print(frame.to_string())
    same = same_rows(args, ["sgd"] + [u for u in args.updates.split(",") if u != "sgd"])
    write_csv(Path(args.out).with_name(Path(args.out).stem + "-rows.csv"), same)
    print(same.to_string())


if __name__ == "__main__":
    main()
