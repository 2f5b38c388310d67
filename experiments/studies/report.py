"""Run folders -> Markdown tables: mean ± std over seeds of a run's final metrics, grouped.

Every folder below the given paths that holds a finished run (summary.json with status finished
and config.json) is one row. Its columns are the summary's metrics plus its settings (SETTINGS:
dataset, model, device, update, rule, lr, epochs, ..., the rule's parameters such as alpha and
beta, and the `--set` overrides as `set`, e.g. "dw_min=0.01"), so any of them can group.

A table never pools runs whose settings differ without saying so: by default it groups by every
setting that differs between the runs (besides the seed); with explicit groups, the settings that
still differ inside a group are listed. Each row gives its number of runs n; a single run shows
its value and "(n=1)" instead of a spread. Runs left out (interrupted, diverged, crashed, still
running) are counted by status, and unreadable run folders are skipped, one line each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hilt.errors import HiltError
from hilt.experiments.measure.cost import energy_curve, energy_to_accuracy
from hilt.experiments.run.config import RUN_SETTINGS
from hilt.experiments.run.run_folder import RunFolder, RunStatus, run_folders

METRICS = ("test_accuracy", "test_accuracy_exact_readout", "train_accuracy", "train_loss", "wall_time_s",
           "train_energy_j", "train_latency_s", "train_expected_pulses", "train_reads")  # energy, latency: estimates
CONFIG_SETTINGS = RUN_SETTINGS  # (experiments/run/config.py)
BASE_GROUPS = ("dataset", "device", "rule")


@dataclass
class Collected:
    frame: pd.DataFrame
    settings: list[str]  # the columns that are settings (the rest: metrics, seed, run_dir)
    left_out: Counter = field(default_factory=Counter)  # status -> runs not in the table
    unreadable: list[str] = field(default_factory=list)  # one line per run folder that could not be read


def _plain(value):
    """A setting as a table cell: lists joined, dicts as text, None (the default: the preset's
    own update, no schedule, ...) as "-", which groups and differs like any other value."""
    if value is None:
        return "-"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value) if isinstance(value, dict) else value


def energy_column(target: float) -> str:
    """The report column of the energy to reach accuracy `target`."""
    return f"train_energy_j_to_{target:g}"


def collect(paths: list[Path], energy_to: float | None = None) -> Collected:
    """The finished runs under `paths`; with `energy_to`, also each run's estimated training energy
    until its test accuracy first reached it (energy_column; empty if it never did)."""
    rows, left_out, unreadable, settings = [], Counter(), [], list(CONFIG_SETTINGS) + ["epochs", "set", "data_set"]
    for root in paths:
        if not Path(root).exists():
            raise HiltError(f"report: {root} does not exist")
        for folder in run_folders(Path(root)):  # compare/sweep folders: their runs are found on their own
            try:
                summary, config = folder.summary(), folder.config()
            except HiltError as err:
                unreadable.append(str(err))
                continue
            except OSError as err:  # a file without read permission, a vanished folder
                unreadable.append(f"{err.filename or folder.path}: cannot be read ({err.strerror or err})")
                continue
            if summary.get("status") != RunStatus.FINISHED:
                left_out[str(summary.get("status", "unknown"))] += 1
                continue
            # the rule's options as it used them (rule_params in run folders before 13/18)
            rule_params = next((v for v in (config.get("rule_params"), config.get("rule_options")) if isinstance(v, dict)), {})
            settings += [k for k in rule_params if k not in settings]
            rows.append({
                **{k: _plain(config.get(k)) for k in CONFIG_SETTINGS},
                "epochs": summary.get("epochs"),
                "set": " ".join(config.get("sets") or []),
                "data_set": " ".join(config.get("data_set") or []),
                **{k: _plain(v) for k, v in rule_params.items()},
                "seed": config.get("seed"),
                **{m: summary.get(m) for m in METRICS},
                **({energy_column(energy_to): energy_to_accuracy(folder.metrics(), energy_to)} if energy_to is not None else {}),
                "run_dir": str(folder.path),
            })
    if not rows:
        counts = ", ".join(f"{n} {status}" for status, n in left_out.items())
        raise HiltError(f"report: no finished runs under {', '.join(map(str, paths))}" + (f" ({counts})" if counts else ""))
    return Collected(pd.DataFrame(rows), settings, left_out, unreadable)


def differing(frame: pd.DataFrame, settings: list[str]) -> list[str]:
    """The settings whose values differ between the runs of the frame."""
    return [k for k in settings if k in frame.columns and frame[k].map(str).nunique(dropna=False) > 1]


PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def check_request(frame: pd.DataFrame, settings: list[str], group_by: list[str] | None, metrics: list[str],
                  plot=None) -> None:
    """HiltError, naming what is allowed, for a --metric that is not a numeric column, a --group-by
    that is empty, repeated, a metric or not a setting, and a --plot that is not an image file."""
    numeric = [c for c in frame.columns if c != "seed" and c not in settings and c != "run_dir"
               and (pd.api.types.is_numeric_dtype(frame[c]) or frame[c].isna().all())]
    for metric in metrics:
        if metric not in numeric:
            raise HiltError(f"report --metric {metric!r}: not a numeric result column; allowed: {', '.join(numeric)}")
    if len(set(metrics)) != len(metrics):
        raise HiltError("report --metric: a metric is given twice")
    if group_by is not None:
        groups = [*BASE_GROUPS, *settings, "seed"]
        if not group_by:
            raise HiltError(f"report --group-by: give column names; allowed: {', '.join(dict.fromkeys(groups))}")
        if len(set(group_by)) != len(group_by):
            raise HiltError("report --group-by: a column is given twice")
        for key in group_by:
            if key in metrics or key not in groups:
                raise HiltError(f"report --group-by {key!r}: not a setting; allowed: {', '.join(dict.fromkeys(groups))}")
    if plot is not None and Path(plot).suffix.lower() not in PLOT_SUFFIXES:
        raise HiltError(f"report --plot {plot}: an image file ends in {', '.join(PLOT_SUFFIXES)}")


def summarize(frame: pd.DataFrame, group_by: list[str] | None, metrics: list[str],
              settings: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per group: n (runs) and each metric as 'mean ± std' ('value (n=1)' for one run).
    group_by None: the base groups plus every setting that differs. Returns the table and the
    settings that still differ inside some group (pooled)."""
    settings = [s for s in (settings or []) if s in frame.columns]
    if group_by is None:
        group_by = list(BASE_GROUPS) + [k for k in differing(frame, settings) if k not in BASE_GROUPS]
    for key in [*group_by, *metrics]:
        if key not in frame.columns:
            raise HiltError(f"report: unknown column {key!r}; allowed: {', '.join(c for c in frame.columns if c != 'run_dir')}")
    grouped = frame.groupby(group_by, dropna=False, sort=True)
    pooled = sorted({k for _, part in grouped for k in differing(part, settings) if k not in group_by},
                    key=settings.index)
    out = grouped.size().rename("n").to_frame()
    for metric in metrics:
        mean, std, count = grouped[metric].mean(), grouped[metric].std(ddof=1), grouped[metric].count()
        out[metric] = [f"{_number(m)} (n=1)" if c == 1 else "-" if c == 0 else f"{_number(m)} ± {_number(s)}"
                       for m, s, c in zip(mean, std, count)]
    return out.reset_index(), pooled


def _number(v: float) -> str:
    """4 decimals for accuracies and losses; 4 significant digits for counts and joules."""
    return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.4g}"


def plot_accuracy_vs_energy(collected: Collected, path: Path, group_by: list[str]) -> None:
    """Test accuracy against cumulative estimated training energy (log scale, from the first
    epoch), one line per run, labelled by the grouping settings that vary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = collected.frame
    varying = [g for g in group_by if frame[g].astype(str).nunique() > 1] or group_by
    fig, ax = plt.subplots(figsize=(10, 5))
    styles = {}
    for _, run in frame.iterrows():
        curve = [(e, a) for e, a in energy_curve(RunFolder(Path(run["run_dir"])).metrics()) if e > 0]  # log axis
        x, y = [e for e, _ in curve], [a for _, a in curve]
        label = ", ".join(f"{run[g]}" for g in varying if str(run[g]) != "nan")
        new = label not in styles
        colour, line = styles.setdefault(label, (plt.cm.tab20(len(styles) % 20), "-" if len(styles) < 20 else "--"))
        ax.plot(x, y, line, marker=".", ms=3, lw=1, color=colour, label=label if new else None)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative training energy, J (estimate from the cost table)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title=", ".join(varying), title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame) -> str:
    """The summary table as a Markdown table."""
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def notes(collected: Collected, pooled: list[str]) -> list[str]:
    """What the table leaves out or pools, one line each (empty when nothing)."""
    lines = list(collected.unreadable)
    if collected.left_out:
        lines.append("left out: " + ", ".join(f"{n} {status}" for status, n in sorted(collected.left_out.items()))
                     + " run(s) (only finished runs are in the table)")
    if pooled:
        lines.append(f"pooled inside a group: runs that differ in {', '.join(pooled)} (add them to --group-by to split)")
    return lines
