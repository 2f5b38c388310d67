"""What counting the crossbars' work (analog/costs.py) adds to a training step, on both paths.

    python bench/count_overhead.py [--steps 300]

Times the same steps (same seed, same batches) with the counters on and with them replaced by
no-ops, after an untimed warm-up, alternating blocks of steps to share the machine's noise;
prints the ratio of the totals and the median ratio of the paired blocks (steps under a
millisecond vary by +-10 % from block to block on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.crossbar import Crossbar, ExactCrossbar
from hilt.experiments.train import TrainConfig, build

CASES = [("digits", "mlp:64-512-10", "rram", "bp", 10), ("digits", "mlp:64-512-10", "rram", "dp_adjoint", 10),
         ("mnist5k", "cnn:8-16", "rram", "bp", 20), ("digits", "mlp:64-512-10", "exact", "bp", 10),
         ("mnist5k", "mlp:784-1024-1024-10", "exact", "dp_adjoint", 100)]
HOOKS = [(Crossbar, "_count_read"), (Crossbar, "_count_update"), (ExactCrossbar, "_count_read"),
         (ExactCrossbar, "_count_update"), (AnalogCrossbar, "_count_read"), (AnalogCrossbar, "_count_update"),
         (AnalogCrossbar, "_count_pulses"), (AnalogCrossbar, "_count_compound")]


def counters(on: bool, saved: dict) -> None:
    for cls, name in HOOKS:
        if on:
            setattr(cls, name, saved[cls, name])
        else:
            setattr(cls, name, lambda self, *a, **k: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=20, help="pairs of blocks, counting and not")
    args = ap.parse_args()
    saved = {(cls, name): cls.__dict__[name] for cls, name in HOOKS}
    for dataset, model, device, rule, batch in CASES:
        setup = build(TrainConfig(dataset=dataset, model=model, device=device, rule=rule, batch_size=batch, out="unused"))
        x, y = setup.data.x_train, setup.data.y_train
        times, ratios = {True: 0.0, False: 0.0}, []
        per_block = args.steps // args.blocks
        for step in range(per_block):  # warm-up, untimed (first calls allocate and fill caches)
            setup.rule.step(setup.net, x[step * batch: (step + 1) * batch], y[step * batch: (step + 1) * batch], 0.01)
        for block in range(2 * args.blocks):
            on = block % 2 == 0
            counters(on, saved)
            start = time.perf_counter()
            for step in range(per_block):
                i = ((block * per_block + step) * batch) % (len(x) - batch)
                setup.rule.step(setup.net, x[i: i + batch], y[i: i + batch], 0.01)
            spent = time.perf_counter() - start
            times[on] += spent
            if on:
                counting = spent
            else:
                ratios.append(counting / spent)
        counters(True, saved)
        steps = per_block * args.blocks
        print(f"{dataset} {model} {device} {rule} batch {batch}: {1e3 * times[True] / steps:.3f} ms/step counting, "
              f"{1e3 * times[False] / steps:.3f} ms/step not: ratio {times[True] / times[False]:.3f} "
              f"(median of {len(ratios)} paired blocks {statistics.median(ratios):.3f})", flush=True)


if __name__ == "__main__":
    main()
