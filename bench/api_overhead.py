"""What the Python API costs against the command line, and what `import hilt` costs.

    python bench/api_overhead.py [--pairs 7] [--epochs 3] [--device exact]

1. The same run (digits, bp, --epochs N, one seed) as `hilt.train(..., out=DIR)` and as the
   command `hilt train ... --out DIR` invoked in the same process (Typer's runner), alternated in
   pairs; the ratio API / CLI per pair and its median (the command line is a client of the API,
   so the ratio should be 1 within this machine's noise).
2. `import hilt` (and the look-up of hilt.train) in fresh processes, against `python -c pass`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def api_vs_cli(pairs: int, epochs: int, device: str) -> list[tuple[float, float]]:
    import hilt
    from typer.testing import CliRunner

    from hilt.cli import app

    runner = CliRunner()
    out = tempfile.mkdtemp(prefix="hilt-api-bench-")
    args = ["train", "--device", device, "--epochs", str(epochs), "--out", out, "--json"]

    def cli():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output

    def api():
        assert hilt.train(device=device, epochs=epochs, out=out).status == "finished"

    api(), cli()  # warm-up: imports, numba cache, data
    return [(timed(api), timed(cli)) for _ in range(pairs)]


def import_time(code: str, repeats: int = 7) -> float:
    times = [timed(lambda: subprocess.run([sys.executable, "-c", code], check=True)) for _ in range(repeats + 1)]
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="exact")
    args = parser.parse_args()
    pairs = api_vs_cli(args.pairs, args.epochs, args.device)
    ratios = [a / c for a, c in pairs]
    print(f"run of {args.epochs} epochs on {args.device}: API {statistics.median(a for a, _ in pairs):.3f} s, "
          f"CLI {statistics.median(c for _, c in pairs):.3f} s (medians of {args.pairs}); API / CLI per pair: "
          f"median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    bare = import_time("pass")
    light = import_time("import hilt; hilt.train")
    print(f"python -c pass {bare:.3f} s; import hilt + hilt.train {light:.3f} s (+{light - bare:.3f} s)")


if __name__ == "__main__":
    main()
