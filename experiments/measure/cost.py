"""Energy and time ESTIMATES of learning: what the crossbars were asked (analog/costs.py counts)
times the per-operation costs of a cost table (cost_table.json beside this file, with the source
of every number; `--cost FILE` for another). Every figure is an estimate from that table:

    energy_j  = cell_reads x cell_read_j + dac_conversions x dac_conversion_j
              + adc_conversions x adc_conversion_j + expected_pulses_up x pulse_up_j
              + expected_pulses_down x pulse_down_j + digital_macs x digital_mac_j
    latency_s = array_reads x read_s + pulse_slots x pulse_slot_s

(tiles work in parallel; digital work is not timed). On the exact path only digital_macs cost:
the same network on a digital accelerator.
"""

from __future__ import annotations

import math
from pathlib import Path

from hilt.analog.costs import COUNT_KEYS
from hilt.errors import HiltError
from hilt.userfiles import read_json

DEFAULT_TABLE = Path(__file__).with_name("cost_table.json")
FORMAT = "hilt-cost-1"
ENERGY = {"cell_reads": "cell_read_j", "dac_conversions": "dac_conversion_j", "adc_conversions": "adc_conversion_j",
          "expected_pulses_up": "pulse_up_j", "expected_pulses_down": "pulse_down_j", "digital_macs": "digital_mac_j"}
LEGACY = {"pulse_j": ("pulse_up_j", "pulse_down_j")}  # a table before pulses were priced by direction
TIME = {"array_reads": "read_s", "pulse_slots": "pulse_slot_s"}
COSTS = tuple(dict.fromkeys([*ENERGY.values(), *TIME.values()]))
ESTIMATES = ("energy_j", "latency_s")
MAX_COST = 1.0  # J or s per operation: more is a typo, and 1e308 would make the estimates Infinity


def load_cost_table(path: str | Path | None = None) -> dict:
    """A cost table (the default without `path`), validated (HiltError naming the problem)."""
    where = Path(path) if path else DEFAULT_TABLE
    what = f"--cost {where}"
    try:
        table = read_json(where, what)
    except FileNotFoundError:
        raise HiltError(f"{what}: no such file") from None
    return check_cost_table(table, what)


def check_cost_table(table, what: str) -> dict:
    """A cost table, validated (HiltError naming `what` and the bad entry): every cost a finite
    number >= 0."""
    if not isinstance(table, dict) or table.get("format") != FORMAT or not isinstance(table.get("costs"), dict):
        raise HiltError(f"{what}: not a hilt cost table (expected {{\"format\": \"{FORMAT}\", \"costs\": {{...}}}}, "
                        f"as {DEFAULT_TABLE.name})")
    costs = table["costs"]
    for old, new in LEGACY.items():  # one price for both directions
        if old in costs and not any(k in costs for k in new):
            costs = table["costs"] = {**{k: v for k, v in costs.items() if k != old}, **{k: costs[old] for k in new}}
    unknown, missing = sorted(set(costs) - set(COSTS)), [k for k in COSTS if k not in costs]
    if unknown or missing:
        raise HiltError(f"{what}: " + "; ".join(filter(None, [unknown and f"unknown costs {', '.join(unknown)}",
                                                               missing and f"missing {', '.join(missing)}"]))
                        + f"; the costs are {', '.join(COSTS)}")
    for key, entry in costs.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value <= MAX_COST):
            raise HiltError(f"{what}: {key} needs {{\"value\": a number in [0, {MAX_COST:g}], \"source\": ...}} "
                            f"(joules or seconds per operation; got {value!r})")
    return table


def estimate(counts: dict, table: dict) -> dict[str, float]:
    """energy_j and latency_s of `counts` (keys of COUNT_KEYS) by `table`."""
    costs = {key: entry["value"] for key, entry in table["costs"].items()}
    return {"energy_j": sum(counts.get(k, 0.0) * costs[c] for k, c in ENERGY.items()),
            "latency_s": sum(counts.get(k, 0.0) * costs[c] for k, c in TIME.items())}


def totals(rows: list[dict], splits: tuple[str, ...]) -> dict[str, float]:
    """Counts and estimates summed over the metrics rows of `splits`."""
    keys = (*COUNT_KEYS, *ESTIMATES)
    return {k: float(sum(r.get(k, 0.0) or 0.0 for r in rows if r["split"] in splits)) for k in keys}


def energy_curve(rows: list[dict]) -> list[tuple[float, float]]:
    """(cumulative training energy in J, test accuracy) at every evaluation of metrics rows; []
    for a run without energy estimates (made before the counters)."""
    if not any(row.get("energy_j") is not None for row in rows if row["split"] == "train"):
        return []
    spent, curve = 0.0, []
    for row in rows:
        if row["split"] == "train":
            spent += row.get("energy_j") or 0.0
        elif row["split"] == "test":
            curve.append((spent, row["accuracy"]))
    return curve


def energy_to_accuracy(rows: list[dict], target: float) -> float | None:
    """Cumulative training energy (J) at the first evaluation whose test accuracy reaches `target`
    (None if none does, or if the run has no energy estimates)."""
    return next((spent for spent, accuracy in energy_curve(rows) if accuracy >= target), None)
