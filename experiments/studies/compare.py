"""Analog vs exact: the same rule trained twice, on the exact path and on a device.

Both runs are built from one TrainConfig and its seed, so they start from the same intended
matrices (the device then programs them with its own write noise and bounds) and see the same
data order. Each is an ordinary run folder inside the comparison's folder, with alignment logged
every epoch and update fidelity sampled every `every` steps (experiments/measure/fidelity.py), on the
visible weights and on the weights the device keeps: on write-noise devices the visible change
includes the write noise redrawn on every pulsed device, which can dwarf the requested change,
and the kept (persistent) weights do not. The comparison folder gets `compare.csv` (tidy: path, epoch, layer, metric, value), `fidelity.csv`
(every sampled step), `summary.json` and `compare.png`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pandas as pd

from hilt.errors import HiltError
from hilt.experiments.measure.fidelity import FidelityProbe
from hilt.experiments.run.files import new_run_dir, write_csv, write_json
from hilt.experiments.run.run_folder import SUMMARY, RunFolder, RunStatus
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.resume import open_run
from hilt.experiments.run.trainer import train

PER_EPOCH = ("loss", "accuracy", "accuracy_exact_readout")
FIDELITY = ("cosine", "norm_ratio", "not_made", "below_one_pulse", "at_bounds", "cosine_kept", "norm_ratio_kept")


def _tidy(path: str, metrics: list[dict], fidelity: list[dict]) -> list[dict]:
    rows = []
    for row in metrics:
        split, epoch = row["split"], row["epoch"]
        for key, value in row.items():
            if key in PER_EPOCH and pd.notna(value):
                rows.append({"path": path, "epoch": epoch, "layer": "", "metric": f"{split}_{key}", "value": value})
            elif key.startswith("align_") and pd.notna(value):
                rows.append({"path": path, "epoch": epoch, "layer": int(key[6:]), "metric": "alignment", "value": value})
    by_epoch_layer: dict[tuple, list[dict]] = {}
    for row in fidelity:
        by_epoch_layer.setdefault((row["epoch"], row["layer"]), []).append(row)
    for (epoch, layer), samples in sorted(by_epoch_layer.items()):
        for key in FIDELITY:
            values = [s[key] for s in samples if not math.isnan(s[key])]
            if values:
                rows.append({"path": path, "epoch": epoch, "layer": layer, "metric": key, "value": sum(values) / len(values)})
    return rows


def compare(cfg: TrainConfig, every: int = 50, on_run: Callable[[str], dict] | None = None) -> dict:
    """Train cfg.rule on exact and on cfg.device; returns the comparison's summary (with `stopped`,
    the summary of the run that did not finish, if one did not).

    `on_run(path)` may return train() callbacks (on_step, on_epoch) for the run on `path`."""
    if cfg.device == "exact":
        raise HiltError("compare trains on the exact path and on a device: give an analog --device")
    if every < 1:
        raise HiltError(f"--every must be >= 1 (got {every})")
    label = cfg.device_label
    setups = {"exact": build(replace(cfg, device="exact", device_definition=None, sets=[], update=None, log_alignment=True)),
              label: build(replace(cfg, log_alignment=True))}
    root = new_run_dir(Path(cfg.out), f"compare-{cfg.dataset}-{label}-{cfg.rule}-s{cfg.seed}")
    tidy, samples, summaries = [], [], {}
    for path, setup in setups.items():
        steps = -(-len(setup.data.x_train) // setup.cfg.batch_size)
        probe = FidelityProbe(setup.rule, every, steps)
        setup = replace(setup, rule=probe, cfg=replace(setup.cfg, out=str(root)))
        summary = train(setup, run=open_run(setup), **(on_run(path) if on_run else {}))
        summaries[path] = summary
        if summary["status"] != RunStatus.FINISHED:
            break
        tidy += _tidy(path, RunFolder(Path(summary["run_dir"])).metrics(), probe.rows)
        samples += [{"path": path, **row} for row in probe.rows]
    stopped = next((s for s in summaries.values() if s["status"] != RunStatus.FINISHED), None)
    result = {"status": stopped["status"] if stopped else RunStatus.FINISHED, "run_dir": str(root), "device": label,
              "rule": cfg.rule, "dataset": cfg.dataset, "seed": cfg.seed, "every": every,
              "runs": {path: s["run_dir"] for path, s in summaries.items()},
              "costs": {path: s.get("costs", {}).get("train", {}) for path, s in summaries.items()},
              "cost_table": next(iter(summaries.values())).get("costs", {}).get("table", "")}
    if stopped:
        result["stopped"] = stopped  # the run that did not finish (diverged or interrupted)
    else:
        write_csv(root / "compare.csv", tidy)
        write_csv(root / "fidelity.csv", samples)
        result["final"] = final_table(tidy, label)
        plot(tidy, label, root / "compare.png")
    write_json(root / SUMMARY, result)
    return result


def final_table(tidy: list[dict], device: str) -> list[dict]:
    """Last-epoch value of each (metric, layer) on both paths, for the CLI's table."""
    last: dict[tuple, dict] = {}
    for row in tidy:
        key = (row["metric"], row["layer"])
        entry = last.setdefault(key, {"metric": row["metric"], "layer": row["layer"]})
        if row["epoch"] >= entry.get(f"_{row['path']}", -1):
            entry[f"_{row['path']}"] = row["epoch"]
            entry[row["path"]] = row["value"]
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in last.values()]


def plot(tidy: list[dict], device: str, path: Path) -> None:
    """compare.png: test accuracy, alignment and update fidelity per epoch, exact and device side by
    side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    frame = pd.DataFrame(tidy)
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    acc = frame[frame.metric.isin(["test_accuracy", "test_accuracy_exact_readout"])]
    for (p, metric), part in acc.groupby(["path", "metric"]):
        if p == "exact" and metric.endswith("readout"):
            continue  # the same numbers as the exact path's own reads
        label = f"{p}" + (" (exact readout)" if metric.endswith("readout") else "")
        axes[0].plot(part.epoch, part.value, marker=".", label=label)
    axes[0].set(title="test accuracy", xlabel="epoch", ylim=(0, 1.02))
    for (p, layer), part in frame[frame.metric == "alignment"].groupby(["path", "layer"]):
        axes[1].plot(part.epoch, part.value, marker=".", label=f"{p}, layer {layer}")
    axes[1].set(title="alignment with BP (cosine)", xlabel="epoch", ylim=(-0.05, 1.05))
    for ax, metric, title in ((axes[2], "cosine", "update fidelity: cosine(actual, requested)"),
                              (axes[3], "norm_ratio", "update fidelity: |actual| / |requested|")):
        for kept, style in (("", "-"), ("_kept", "--")):  # visible weights; the weights the device keeps
            for (p, layer), part in frame[frame.metric == metric + kept].groupby(["path", "layer"]):
                label = f"{p}, layer {layer}" + (" (kept)" if kept else "")
                ax.plot(part.epoch, part.value, style, marker=".", label=label)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(title=title + ", kept weights dashed", xlabel="epoch")
    axes[2].set_ylim(-0.05, 1.05)
    axes[3].set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
