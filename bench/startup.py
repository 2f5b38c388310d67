"""Start-up time of `python cli.py train --device exact --epochs 1`: the whole command's wall time
minus the training and evaluation it reports (summary wall_time_s). Target: under 1 s.

    python bench/startup.py [--repeats 7] [--out results/startup.csv]

Each repeat is a fresh process; the first one is dropped (cold file cache). Also prints the
slowest imports of one run (python -X importtime).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["train", "--device", "exact", "--epochs", "1", "--json"]


def one_run(out: str, importtime: bool = False) -> tuple[float, float, str]:
    flags = ["-X", "importtime"] if importtime else []
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, str(ROOT / "cli.py"), *COMMAND, "--out", out],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    total = time.perf_counter() - t0
    return total, json.loads(proc.stdout)["wall_time_s"], proc.stderr


def slowest_imports(stderr: str, count: int = 6) -> list[tuple[str, float]]:
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  "):  # top-level imports only (nested ones are in their parents)
                rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="results/startup.csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        results = [one_run(runs) for _ in range(args.repeats + 1)][1:]
        *_, stderr = one_run(runs, importtime=True)
    startup = [total - train for total, train, _ in results]
    total = [t for t, _, _ in results]
    print(f"whole command: median {statistics.median(total):.3f} s; start-up (command - training): "
          f"median {statistics.median(startup):.3f} s, min {min(startup):.3f} s over {len(results)} runs")
    for name, seconds in slowest_imports(stderr):
        print(f"  import {name}: {seconds:.3f} s")
    lines = ["run,total_s,training_s,startup_s"] + [f"{i},{t:.4f},{tr:.4f},{t - tr:.4f}" for i, (t, tr, _) in enumerate(results)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
