"""Sample efficiency on the Random Hierarchy Model: P* per rule (Delrocq et al. 2026, arXiv 2605.18557).

For every rule and every training-set size P of a geometric grid (times seeds), one ordinary run
on `rhm` with `train_size=P`; the points run through the sweep machinery (experiments/studies/sweep.py),
so `--jobs` and Ray work and a killed study resumes. The test set has the same size for every P,
min(P_max - max P, 20000) unless given (C5).

Test error: for a self-supervised rule, the linear probe of the last layer (C4); for a supervised
rule, the network's own output (C6). P* = the smallest P whose seed-averaged error is at most
10 % of chance, 0.1 (1 - 1/n_c), log-interpolated between the grid points around the crossing.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from hilt.data.rhm import RHMParams
from hilt.errors import HiltError
from hilt.keyvalue import parse_items
from hilt.experiments.studies import sweep as sweeps
from hilt.experiments.run.files import write_csv
from hilt.experiments.run.run_folder import RunFolder, RunStatus
from hilt.rules import BUILTIN, resolve


def geometric_sizes(p_min: int, p_max: int, per_decade: int) -> list[int]:
    """Distinct integers from p_min to p_max, `per_decade` per factor of 10."""
    if not 1 <= p_min <= p_max or per_decade < 1:
        raise HiltError(f"rhm-pstar: need 1 <= --p-min <= --p-max and --per-decade >= 1 (got {p_min}, {p_max}, {per_decade})")
    count = max(2, round(math.log10(p_max / p_min) * per_decade) + 1)
    return sorted({int(round(v)) for v in np.geomspace(p_min, p_max, count)})


def rhm_params(cfg) -> RHMParams:
    """The RHM parameters of a run's --data-set options."""
    return RHMParams.parse(parse_items("--data-set", cfg.data_set))


def plan(base, rules: list[str], sizes: list[int], seeds: int, out: Path, name: str | None = None) -> sweeps.Sweep:
    """The rhm-pstar study as a sweep: rules x training-set sizes x seeds (HiltError on bad input)."""
    if base.dataset != "rhm":
        raise HiltError(f"rhm-pstar runs on --dataset rhm (got {base.dataset})")
    if not rules:
        raise HiltError(f"rhm-pstar --rules: give at least one rule; allowed: {', '.join(BUILTIN)}, or a plug-in")
    for r in rules:
        resolve(r)
    twice = sorted({r for r in rules if rules.count(r) > 1})
    if twice:
        raise HiltError(f"rhm-pstar --rules: {', '.join(twice)} is listed twice; list each rule once")
    params = rhm_params(base)
    if params.train_size != -1:
        raise HiltError("rhm-pstar sets train_size itself (the P grid); leave it out of --data-set")
    if params.test_size == -1:
        test = min(params.p_max - max(sizes), 20_000) if params.p_max < 10**9 else 20_000
        if test < 1:
            raise HiltError(f"rhm-pstar: P_max = {params.p_max} leaves no test data beyond P = {max(sizes)}; lower --p-max")
        base = replace(base, data_set=[*base.data_set, f"test_size={test}"])
    base = replace(base, rule=rules[0])
    grid = ["rule=" + ",".join(rules), f"train_size={','.join(str(p) for p in sizes)}"]
    return sweeps.plan(base, grid, seeds, out, name)


def error_of(summary: dict) -> float | None:
    """Test error of a finished run (None otherwise): its last layer's probe for a self-supervised
    run (which records the probe per layer), else its output's."""
    if summary.get("status") != RunStatus.FINISHED:
        return None
    if "probe_accuracy_per_layer" in summary:
        return 1.0 - summary["probe_accuracy_per_layer"][-1]
    return 1.0 - summary["test_accuracy"]


def p_star(sizes: list[int], errors: list[float], threshold: float) -> float | None:
    """First crossing of the threshold by the error curve, log-interpolated; None if never reached."""
    for i, (p, e) in enumerate(zip(sizes, errors)):
        if e <= threshold:
            if i == 0:
                return float(p)
            p0, e0 = sizes[i - 1], errors[i - 1]
            t = (e0 - threshold) / (e0 - e) if e0 != e else 1.0
            return float(math.exp(math.log(p0) + t * (math.log(p) - math.log(p0))))
    return None


def analyse(sweep: sweeps.Sweep, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(errors per rule and P: mean, std, seeds; P* per rule), also written as errors.csv, pstar.csv
    and pstar.png in the study folder."""
    import pandas as pd

    params = rhm_params(sweep.base)
    threshold = 0.1 * (1 - 1 / params.n_c)
    records = []
    for row in rows:
        error = error_of(RunFolder(row["run_dir"]).summary())
        if error is not None:
            records.append({"rule": row["rule"], "P": row["train_size"], "seed": row["seed"], "error": error})
    if not records:
        return [], []
    frame = pd.DataFrame(records)
    stats = frame.groupby(["rule", "P"], sort=False)["error"].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    errors = stats.rename(columns={"count": "seeds"}).to_dict("records")
    pstar = []
    for rule in sweep.grid["rule"]:
        part = stats[stats.rule == rule].sort_values("P")
        value = p_star(list(part.P), list(part["mean"]), threshold) if len(part) else None
        pstar.append({"rule": rule, "p_star": value, "threshold": threshold, "n_c_m_L": params.n_c * params.m**params.L,
                      "p_max": params.p_max, "min_error": float(part["mean"].min()) if len(part) else None})
    write_csv(sweep.root / "errors.csv", errors)
    write_csv(sweep.root / "pstar.csv", pstar)
    plot(errors, pstar, threshold, sweep.root / "pstar.png",
         f"RHM v={params.v} n_c={params.n_c} m={params.m} L={params.L}, {sweep.base.device}")
    return errors, pstar


def plot(errors: list[dict], pstar: list[dict], threshold: float, path: Path, title: str) -> None:
    """pstar.png: test error against the training-set size P per rule, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for entry in pstar:
        part = [e for e in errors if e["rule"] == entry["rule"]]
        label = entry["rule"] + (f" (P* = {entry['p_star']:.0f})" if entry["p_star"] else " (P* not reached)")
        ax.errorbar([e["P"] for e in part], [e["mean"] for e in part], yerr=[e["std"] for e in part],
                    marker="o", capsize=3, label=label)
    ax.axhline(threshold, color="grey", linestyle="--", label="10 % of chance")
    ax.axvline(pstar[0]["n_c_m_L"], color="grey", linestyle=":", label="n_c m^L")
    ax.set(xscale="log", xlabel="training set size P", ylabel="test error (mean ± std over seeds)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
