"""Run folders -> Markdown tables: mean ± std over seeds of a run's final metrics, grouped as asked.

Every folder below the given paths that holds a finished run (summary.json with status finished
and config.json) is one row. Its columns are the summary's metrics plus its settings: dataset,
model, device, rule, seed, lr, batch_size, epochs, optimizer, the rule's parameters (alpha,
beta, ...) and the `--set` overrides (`set`, e.g. "dw_min=0.01"), so any of them can group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from devices import HiltError

METRICS = ("test_accuracy", "test_accuracy_exact_readout", "train_accuracy", "train_loss", "wall_time_s")


def collect(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for root in paths:
        if not Path(root).exists():
            raise HiltError(f"report: {root} does not exist")
        for summary_file in sorted(Path(root).rglob("summary.json")):
            config_file = summary_file.with_name("config.json")
            summary = json.loads(summary_file.read_text())
            if summary.get("status") != "finished" or not config_file.is_file():
                continue  # unfinished runs, and compare/sweep folders (their runs are found on their own)
            config = json.loads(config_file.read_text())
            rows.append({
                **{k: config.get(k) for k in ("dataset", "model", "device", "rule", "seed", "lr", "batch_size", "optimizer")},
                "epochs": summary["epochs"],
                "set": " ".join(config.get("sets") or []),
                **config.get("rule_params", {}),
                **{m: summary.get(m) for m in METRICS},
                "run_dir": str(summary_file.parent),
            })
    if not rows:
        raise HiltError(f"report: no finished runs under {', '.join(map(str, paths))}")
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame, group_by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per group: the number of runs and each metric as 'mean ± std'."""
    for key in [*group_by, *metrics]:
        if key not in frame.columns:
            raise HiltError(f"report: unknown column {key!r}; allowed: {', '.join(c for c in frame.columns if c != 'run_dir')}")
    grouped = frame.groupby(group_by, dropna=False, sort=True)
    out = grouped.size().rename("runs").to_frame()
    for metric in metrics:
        mean, std = grouped[metric].mean(), grouped[metric].std(ddof=1).fillna(0.0)
        out[metric] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
    return out.reset_index()


def markdown(table: pd.DataFrame) -> str:
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"
