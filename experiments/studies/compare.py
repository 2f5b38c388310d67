"""Analog vs exact: the same rule trained twice, on the exact path and on a device.

Both runs are built from one TrainConfig and its seed, so they start from the same intended
matrices (the device then programs them with its own write noise and bounds) and see the same
data order. Each is an ordinary run folder inside the comparison's folder, with alignment logged
every epoch and update fidelity sampled every `every` steps (experiments/measure/fidelity.py), on the
visible weights and on the weights the device keeps: on write-noise devices the visible change
includes the write noise redrawn on every pulsed device, which can dwarf the requested change,
and the kept (persistent) weights do not. The comparison folder gets `comparison.json` (its
settings), `compare.csv` (tidy: path, epoch, layer, metric, value), `fidelity.csv` (every sampled
step; each run keeps its own too), `summary.json` and `compare.png`. An interrupted comparison is
finished by `compare --resume DIR`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pandas as pd

from hilt.errors import HiltError
from hilt.experiments.measure.fidelity import FidelityProbe
from hilt.experiments.run.files import new_run_dir, read_json, write_csv, write_json
from hilt.experiments.run.run_folder import SUMMARY, MemoryFolder, RunFolder, RunStatus
from hilt.experiments.run.config import COMPARE_EVERY, TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.resume import config_record, open_run, resume_config
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


SETTINGS, FIDELITY_CSV = "comparison.json", "fidelity.csv"


def compare(cfg: TrainConfig, every: int = COMPARE_EVERY, on_run: Callable[[str], dict] | None = None,
            resume: Path | None = None) -> dict:
    """Train cfg.rule on exact and on cfg.device; returns the comparison's summary (with `stopped`,
    the summary of the run that did not finish, if one did not).

    `resume` finishes an interrupted comparison folder (cfg and every from `reopen`): a finished
    run is kept (or continued to more epochs), an interrupted one resumed from its checkpoint with
    the fidelity samples of its kept epochs, a run not begun started. `on_run(path)` may return
    train() callbacks (on_step, on_epoch) for the run on `path`."""
    if resume is not None:
        root, runs = Path(resume), _runs(Path(resume))
    else:
        if cfg.device == "exact":
            raise HiltError("compare trains on the exact path and on a device: give an analog --device")
        if every < 1:
            raise HiltError(f"--every must be >= 1 (got {every})")
        root, runs = None, {}
    label = cfg.device_label
    setups = {"exact": build(replace(cfg, device="exact", device_definition=None, sets=[], update=None, log_alignment=True)),
              label: build(replace(cfg, log_alignment=True))}
    if root is None:
        root = new_run_dir(Path(cfg.out), f"compare-{cfg.dataset}-{label}-{cfg.rule}-s{cfg.seed}")
        write_json(root / SETTINGS, {"settings": config_record(setups[label]), "every": every})
    result = {"status": RunStatus.RUNNING, "run_dir": str(root), "device": label, "rule": cfg.rule, "dataset": cfg.dataset,
              "seed": cfg.seed, "every": every, "epochs_target": cfg.epochs, "runs": runs}
    write_json(root / SUMMARY, result)
    tidy, samples, summaries = [], [], {}
    for path, setup in setups.items():
        steps = -(-len(setup.data.x_train) // setup.cfg.batch_size)
        probe = FidelityProbe(setup.rule, every, steps)
        setup = replace(setup, rule=probe, cfg=replace(setup.cfg, out=str(root)))
        summary = _train(setup, probe, runs.get(path), **(on_run(path) if on_run else {}),
                         on_open=lambda run_dir, path=path: _record_run(root, result, path, run_dir))
        summaries[path] = summary
        if summary["status"] != RunStatus.FINISHED:
            break
        tidy += _tidy(path, RunFolder(Path(summary["run_dir"])).metrics(), probe.rows)
        samples += [{"path": path, **row} for row in probe.rows]
    stopped = next((s for s in summaries.values() if s["status"] != RunStatus.FINISHED), None)
    result.update(status=stopped["status"] if stopped else RunStatus.FINISHED,
                  costs={path: s.get("costs", {}).get("train", {}) for path, s in summaries.items()},
                  cost_table=next(iter(summaries.values())).get("costs", {}).get("table", ""))
    if stopped:
        result["stopped"] = stopped  # the run that did not finish (diverged or interrupted)
    else:
        write_csv(root / "compare.csv", tidy)
        write_csv(root / FIDELITY_CSV, samples)
        result["final"] = final_table(tidy, label)
        plot(tidy, label, root / "compare.png")
    write_json(root / SUMMARY, result)
    return result


def _record_run(root: Path, result: dict, path: str, run_dir: Path) -> None:
    result["runs"][path] = str(run_dir)
    write_json(root / SUMMARY, result)


def _train(setup, probe: FidelityProbe, run_dir: str | None, on_open, on_step=None, on_epoch=None) -> dict:
    """One side of the comparison: a new run, or `run_dir` resumed (kept as it is when it already has
    its epochs). Its fidelity samples are written to the run's fidelity.csv after every epoch, so a
    resumed run keeps those of its kept epochs."""
    if run_dir is None:
        run = open_run(setup)
        on_open(run.run_dir)
    else:
        folder = RunFolder(Path(run_dir), f"--resume: the comparison's run {run_dir}")
        if not folder.has_checkpoint():  # killed before its first epoch was kept: begin it again
            return _train(setup, probe, None, on_open, on_step, on_epoch)
        kept = folder.summary()
        probe.rows = [row for row in _fidelity_rows(folder) if row["epoch"] <= folder.checkpoint().epoch]
        if kept.get("status") == RunStatus.FINISHED and kept.get("epochs") == setup.cfg.epochs:
            return kept
        run = open_run(setup, resume=folder)
        probe.count = run.ckpt.epoch * probe.steps_per_epoch

    def epoch_done(train_row, test_row):
        write_csv(Path(run.run_dir) / FIDELITY_CSV, probe.rows)
        if on_epoch:
            on_epoch(train_row, test_row)

    return train(setup, run=run, on_step=on_step, on_epoch=epoch_done)


def _fidelity_rows(folder: RunFolder) -> list[dict]:
    path = folder.path / FIDELITY_CSV
    return pd.read_csv(path).to_dict("records") if path.is_file() and path.stat().st_size else []


def reopen(root: Path, given: dict) -> tuple[TrainConfig, int]:
    """An interrupted comparison's settings and `every`, from its comparison.json; `given`, the
    settings the user named (TrainConfig fields, rule options, every), may only change epochs."""
    what = f"--resume {root}"
    if not (root / SETTINGS).is_file():
        raise HiltError(f"{what}: not a comparison folder (no {SETTINGS} there; `compare` writes one)")
    saved = read_json(root / SETTINGS)
    settings = MemoryFolder()
    settings.what = what
    settings.write_config(saved.get("settings") if isinstance(saved.get("settings"), dict) else {})
    settings.write_summary(read_json(root / SUMMARY) if (root / SUMMARY).is_file() else {})
    given = dict(given)
    every = given.pop("every", None)
    every = saved.get("every") if every is None else every
    if every != saved.get("every") or not isinstance(every, int):
        raise HiltError(f"--resume: --every {every} differs from the comparison's {saved.get('every')}; "
                        "a resumed comparison keeps its settings (only --epochs may change)")
    return resume_config(settings, given), every


def _runs(root: Path) -> dict:
    """The runs an earlier call began ({"exact" or the device: folder}), from summary.json."""
    runs = (read_json(root / SUMMARY) if (root / SUMMARY).is_file() else {}).get("runs")
    return {k: v for k, v in (runs if isinstance(runs, dict) else {}).items() if isinstance(v, str) and Path(v).is_dir()}


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
