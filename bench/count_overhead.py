"""What counting the crossbars' work (analog/costs.py) adds to a training step, on both paths.

    python bench/count_overhead.py [--steps 600] [--blocks 20]

Times the same steps (same seed, same batches) with the counters on and with them replaced by
no-ops, after an untimed warm-up, alternating blocks of steps to share the machine's noise
(steps under a millisecond vary by +-10 % from block to block on a shared machine). Prints per
case the ratio of the fastest blocks (the least disturbed), the median ratio of the paired
blocks, and, from a last round with every counting hook timed in place, the time spent inside
them per step as a share of a step that does not count.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.analog.crossbar import Crossbar
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build

CASES = [("digits", "mlp:64-512-10", "rram", "bp", 10), ("digits", "mlp:64-512-10", "rram", "dp_adjoint", 10),
         ("mnist5k", "cnn:8-16", "rram", "bp", 20), ("digits", "mlp:64-512-10", "exact", "bp", 10),
         ("mnist5k", "mlp:784-1024-1024-10", "exact", "dp_adjoint", 100),
         ("digits", None, "rram", "ep", 10), ("digits", None, "rram", "ff", 10)]  # None: the rule's own model
HOOKS = [(Crossbar, "_count_read"), (Crossbar, "_count_update"), (AnalogCrossbar, "_count_pulses")]


def counters(mode: str, saved: dict, spent: list) -> None:
    """mode: "on", "off" (no-ops) or "timed" (on, adding their time to spent[0])."""
    for cls, name in HOOKS:
        hook = saved[cls, name]
        if mode == "off":
            hook = lambda self, *a, **k: None  # noqa: E731
        elif mode == "timed":
            hook = timed(hook, spent)
        setattr(cls, name, hook)


def timed(hook, spent: list):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        hook(*args, **kwargs)
        spent[0] += time.perf_counter() - start
    return wrapper


def run_block(setup, first: int, steps: int, batch: int, counting: bool) -> float:
    x, y = setup.data.x_train, setup.data.y_train
    start = time.perf_counter()
    for step in range(first, first + steps):
        i = (step * batch) % (len(x) - batch)
        setup.rule.step(setup.net, x[i: i + batch], y[i: i + batch], 0.01)
    if counting:
        setup.net.take_counts()  # the ledgers' last rows and the per-row costs, once per block
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--blocks", type=int, default=20, help="pairs of blocks, counting and not")
    ap.add_argument("--rules", default=None, help="only the cases of these rules (comma-separated)")
    args = ap.parse_args()
    saved = {(cls, name): cls.__dict__[name] for cls, name in HOOKS}
    per_block = args.steps // args.blocks
    for dataset, model, device, rule, batch in CASES:
        if args.rules and rule not in args.rules.split(","):
            continue
        setup = build(TrainConfig(dataset=dataset, model=model, device=device, rule=rule, batch_size=batch, out="unused"))
        run_block(setup, 0, per_block, batch, True)  # warm-up, untimed (first calls allocate and fill caches)
        blocks = {"on": [], "off": []}
        for block in range(2 * args.blocks):
            mode = "off" if block % 2 else "on"
            counters(mode, saved, [0.0])
            blocks[mode].append(run_block(setup, (block + 1) * per_block, per_block, batch, mode == "on"))
        spent = [0.0]
        counters("timed", saved, spent)
        for block in range(args.blocks):
            run_block(setup, block * per_block, per_block, batch, True)
        counters("on", saved, spent)
        fastest_on, fastest_off = min(blocks["on"]) / per_block, min(blocks["off"]) / per_block
        paired = statistics.median(a / b for a, b in zip(blocks["on"], blocks["off"]))
        inside = spent[0] / (args.blocks * per_block)
        print(f"{dataset} {model} {device} {rule} batch {batch}: {1e3 * fastest_on:.3f} ms/step counting, "
              f"{1e3 * fastest_off:.3f} not: ratio {fastest_on / fastest_off:.3f} (median of {args.blocks} paired "
              f"blocks {paired:.3f}); inside the counters {1e6 * inside:.1f} us/step = {inside / fastest_off:.1%}",
              flush=True)


if __name__ == "__main__":
    main()
