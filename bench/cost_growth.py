"""How cost grows with the network: step time and peak memory of a bp step against MLP width
(784-H-H-10, H = 256 ... 4096) and depth (784-[1024 x L]-10), on the exact path and on rram with
the sgd, summed and mp updates, each beside its reference (bare NumPy matmuls; aihwkit's own
AnalogSequential + AnalogSGD), every case in a fresh process (timing.isolated). Also the largest
MLP and VGG16 width that hilt's memory check admits on 24 GiB on each path.

    python bench/cost_growth.py [--quick] [--out results/reference/cost-growth]

Writes cost_growth.csv, largest.csv and cost_growth.png.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from hilt.experiments.reference.timing import growth_case, isolated

WIDTHS = [256, 512, 1024, 2048, 4096]
DEPTHS = [1, 2, 4, 8]
ANALOG = [("rram", None), ("rram", "summed"), ("rram", "mp")]
BATCH = 32
GIB24 = 24 * 2**30


def steps_for(width: int, analog: bool) -> int:
    """Fewer timed steps where one step is long (analog tiles pulse every device of a row)."""
    return max(3, int((40 if analog else 200) * (256 / width) ** 2))


def cases(quick: bool) -> list[tuple]:
    widths = WIDTHS[:3] if quick else WIDTHS
    out = []
    for w in widths:
        out.append(("width", w, f"mlp:784-{w}-{w}-10", "exact", None, steps_for(w, False)))
        for device, update in ANALOG:
            out.append(("width", w, f"mlp:784-{w}-{w}-10", device, update, steps_for(w, True)))
    for depth in DEPTHS[:2] if quick else DEPTHS:
        model = "mlp:784-" + "-".join(["1024"] * depth) + "-10"
        out.append(("depth", depth, model, "exact", None, steps_for(1024, False)))
        out.append(("depth", depth, model, "rram", None, max(3, steps_for(1024, True) // depth)))
    return out


def largest() -> list[dict]:
    """The largest square MLP (784-H-H-10, batch 100) and VGG16 width multiplier (32x32, batch 32)
    that the memory check (analog/network.py: weights + a batch's working arrays) admits on 24 GiB."""
    from hilt.analog.network import crossbar_factory, network_bytes
    from hilt.devices import parse_device

    rows = []
    for path in ("exact", "rram"):
        factory = crossbar_factory(parse_device(path))

        def need(spec: str, shape, batch: int) -> float:
            return network_bytes(spec, shape, 10, factory, batch_size=batch)[3]

        lo, hi = 256, 1 << 20  # bisect the hidden width
        while hi - lo > 64:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if need(f"mlp:784-{mid}-{mid}-10", (784,), 100) <= GIB24 else (lo, mid)
        rows.append({"path": path, "network": "mlp:784-H-H-10, batch 100", "largest": f"H = {lo}",
                     "weights": network_bytes(f"mlp:784-{lo}-{lo}-10", (784,), 10, factory)[2]})
        lo_w, hi_w = 0.25, 64.0
        for _ in range(30):
            mid = math.sqrt(lo_w * hi_w)
            lo_w, hi_w = (mid, hi_w) if need(f"vgg16@{mid:.4f}", (3, 32, 32), 32) <= GIB24 else (lo_w, mid)
        rows.append({"path": path, "network": "vgg16@W, 32x32, batch 32", "largest": f"W = {lo_w:.2f}",
                     "weights": None})
    return rows


def plot(frame: pd.DataFrame, path: Path) -> None:
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.ERROR)  # font notices
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    width = frame[frame.axis == "width"]
    for (device, update), part in width.groupby(["device", "update"], dropna=False):
        label = device + (f"+{update}" if update else "")
        axes[0].plot(part["size"], part.hilt_ms, marker="o", label=f"hilt {label}")
        if part.reference_ms.notna().any():
            axes[0].plot(part["size"], part.reference_ms, "--", marker=".", label=f"reference for {label}")
        axes[1].plot(part["size"], part.peak_mib, marker="o", label=label)
    depth = frame[frame.axis == "depth"]
    for device, part in depth.groupby("device"):
        axes[2].plot(part["size"], part.hilt_ms, marker="o", label=f"hilt {device}")
        axes[2].plot(part["size"], part.reference_ms, "--", marker=".", label=f"reference for {device}")
    axes[0].set(xscale="log", yscale="log", xlabel="hidden width H (784-H-H-10)", ylabel="ms per bp step",
                title=f"step time, batch {BATCH}")
    axes[1].set(xscale="log", yscale="log", xlabel="hidden width H", ylabel="MiB", title="peak memory above start")
    axes[2].set(yscale="log", xlabel="hidden layers of 1024", ylabel="ms per bp step", title="step time against depth")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="widths up to 1024, depths up to 2")
    ap.add_argument("--out", default="results/reference/cost-growth")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = cases(args.quick)
    rows = isolated([(growth_case, (model, device, update, BATCH, steps), {}) for _, _, model, device, update, steps in plan])
    frame = pd.DataFrame([{"axis": axis, "size": size, **row} for (axis, size, *_), row in zip(plan, rows)])
    frame["ratio"] = frame.hilt_ms / frame.reference_ms
    frame.to_csv(out / "cost_growth.csv", index=False)
    pd.DataFrame(largest()).to_csv(out / "largest.csv", index=False)
    plot(frame, out / "cost_growth.png")
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
