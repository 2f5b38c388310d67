"""Robustness of a finished run to inference non-idealities it was not trained with.

The run's read-out weights (from its checkpoint) are programmed onto aihwkit inference tiles
(analog/inference_crossbar.py, devices/inference.py) and the test set is read through them. Each
family varies one factor from a base: aihwkit's InferenceRPUConfig defaults (PCM-like programming
noise, out_noise 0.06, 7-bit DAC, 9-bit ADC), read 1 s after programming, with global drift
compensation. Every point is repeated over `draws` noise draws (aihwkit seeds its noise from the
clock). The reference point is the exact readout: the weights run in float arithmetic. A
self-supervised run is scored like in training: a linear probe fitted on the features the
inference tiles give (the digital readout is trained on the chip's own outputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hilt.analog import backend
from hilt.analog.inference_crossbar import inference_factory
from hilt.analog.network import build_network
from hilt.errors import HiltError
from hilt.devices.inference import inference_rpu_config
from hilt.experiments.run import checkpoint
from hilt.experiments.run.files import write_csv
from hilt.experiments.run.run_folder import RunFolder, RunStatus
from hilt.experiments.run.setup import build
from hilt.experiments.run.scoring import held_out_score
from hilt.experiments.run.resume import resume_config

HOUR, DAY, YEAR = 3600.0, 86400.0, 365.25 * 86400.0
DRIFT_TIMES = {"1 s": 1.0, "1 h": HOUR, "1 day": DAY, "1 year": YEAR}

# (family, value label, inference config options, seconds after programming, stuck fraction)
CONDITIONS = (
    [("drift, compensated", label, {}, t, 0.0) for label, t in DRIFT_TIMES.items()]
    + [("drift, uncompensated", label, {"drift_compensation": False}, t, 0.0) for label, t in DRIFT_TIMES.items()]
    + [("read noise", str(v), {"read_noise": v}, 1.0, 0.0) for v in (0.0, 0.02, 0.06, 0.1, 0.2)]
    + [("ADC bits", str(v or "float"), {"adc_bits": v}, 1.0, 0.0) for v in (4, 6, 8, 0)]
    + [("DAC bits", str(v or "float"), {"dac_bits": v}, 1.0, 0.0) for v in (4, 6, 8, 0)]
    + [("stuck at zero", str(v), {}, 1.0, v) for v in (0.0, 0.01, 0.05, 0.1)]
)


def robustness(run_dir: Path, draws: int = 5, on_point: Callable[[], None] | None = None) -> list[dict]:
    """Rows (family, value, draw, accuracy); also written to RUN_DIR/robustness/robustness.csv (and
    .png), or robustness-2.csv and on when earlier calls wrote those."""
    run_dir = Path(run_dir)
    if draws < 1:
        raise HiltError(f"--draws must be >= 1 (got {draws})")
    folder = RunFolder(run_dir, f"robustness {run_dir}")
    if folder.status != RunStatus.FINISHED:
        raise HiltError(f"{folder.what}: not a finished run folder (summary.json with status finished)")
    setup = build(resume_config(run_dir, {}, what=folder.what))
    with folder.lock():
        return _robustness(setup, folder, draws, on_point)


def _robustness(setup, folder: RunFolder, draws: int, on_point) -> list[dict]:
    cfg, data, net, rule = setup.cfg, setup.data, setup.net, setup.rule
    checkpoint.restore(net, folder.checkpoint(), folder.what)
    weights = [backend.to_numpy(w) for w in net.weights()]
    plan = rule.network_plan(data)
    rows = [{"family": "none (exact readout)", "value": "-", "draw": 0,
             "accuracy": held_out_score(rule, net.exact_copy(), data)["accuracy"]}]
    for family, value, options, seconds, stuck in CONDITIONS:
        for draw in range(draws):
            factory = inference_factory(lambda: inference_rpu_config(**options), stuck, seed=draw)
            inference_net = build_network(cfg.model, plan.input_shape, data.n_classes, factory,
                                          activation=cfg.activation, weights=weights, readout=plan.readout)
            for crossbar in inference_net.crossbars():
                crossbar.drift(seconds)
            rows.append({"family": family, "value": value, "draw": draw,
                         "accuracy": held_out_score(rule, inference_net, data)["accuracy"]})
            if on_point:
                on_point()
    csv_path, png_path = result_paths(folder.path / "robustness")
    write_csv(csv_path, rows)
    plot(rows, png_path, title=f"{cfg.rule} on {cfg.device_label}: {cfg.dataset} {cfg.model}")
    return rows


def result_paths(out: Path) -> tuple[Path, Path]:
    """robustness.csv / .png, or, when an earlier call wrote those, robustness-2, -3, ...: a call
    never replaces the results of another."""
    stem, k = "robustness", 1
    while (out / f"{stem}.csv").exists() or (out / f"{stem}.png").exists():
        k += 1
        stem = f"robustness-{k}"
    return out / f"{stem}.csv", out / f"{stem}.png"


def summary_table(rows: list[dict]) -> list[dict]:
    """Mean ± std over draws per (family, value), in the order of CONDITIONS."""
    import numpy as np

    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault((row["family"], row["value"]), []).append(row["accuracy"])
    return [{"family": f, "value": v, "draws": len(a), "mean": float(np.mean(a)),
             "std": float(np.std(a, ddof=1)) if len(a) > 1 else 0.0} for (f, v), a in groups.items()]


def plot(rows: list[dict], path: Path, title: str) -> None:
    """robustness.png: accuracy (mean ± std over draws) per family and value, the exact readout as a
    line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary_table(rows)
    reference = table[0]["mean"]
    families = list(dict.fromkeys(r["family"] for r in table[1:]))
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3.6), sharey=True)
    for ax, family in zip(axes, families):
        part = [r for r in table if r["family"] == family]
        ax.errorbar(range(len(part)), [r["mean"] for r in part], yerr=[r["std"] for r in part], marker="o", capsize=3)
        ax.axhline(reference, color="grey", lw=0.8, ls="--", label="exact readout")
        ax.set(xticks=range(len(part)), xticklabels=[r["value"] for r in part], title=family)
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean ± std over draws)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
