"""For a machine with a GPU: every built-in rule's training steps on CuPy against the same steps on
NumPy (the exact path), on an MLP and on a conv net.

    python bench/gpu_parity.py [--json OUT] [--dry-run]

Each case builds the network twice from the same seed, once per array backend, gives both the
same batches (rules draw their random numbers on the host, so both sides draw the same), takes
`STEPS` steps, and compares every crossbar's weights (float32 rounding: rtol 1e-3, atol 1e-5 after
the steps) and the hardware-cost counts (equal). A case is `ok`, `differs` (with the largest
difference), `failed` (the error's last line) or `n/a` (the rule does not train that model kind).
The test suite runs on NumPy only; this is how the CuPy path is checked. `--dry-run` compares
NumPy with NumPy: the script's own mechanics on a machine without a GPU. Not run in the tests
or CI. Exit code 0 when every case that applies is `ok`, else 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

import numpy as np

from hilt.analog import backend
from hilt.analog.network import build_network, crossbar_factory
from hilt.data.dataset import Dataset
from hilt.data.pairs import Pairs, next_row
from hilt.devices import parse_device
from hilt.rules import make_rule
from hilt.rules.registry import BUILTIN

MODELS = {"mlp": ("mlp:{n}-24-5", (48,)), "cnn": ("cnn:4-8", (3, 12, 12))}
VARIANTS = [("ff", {"negatives": "hybrid"}), ("dp", {"schedule": "fw"})]  # besides every rule's defaults
BATCH, STEPS, LR = 6, 2, 0.05


def _stand_in(shape) -> Dataset:
    """A dataset of the right shapes for the rules' network plans (nothing is read from it)."""
    x, y = np.zeros((1, *shape), np.float32), np.zeros(1, np.int64)
    return Dataset("parity", x, y, x, y, n_classes=5, default_hidden=24)


def run_side(xp_name: str, rule_name: str, options: dict, kind: str) -> tuple[list[np.ndarray], dict] | None:
    """(weights of every crossbar after STEPS steps, counts) on one backend; None: n/a."""
    backend.use(xp_name)
    rule = make_rule(rule_name, **options)
    spec, shape = MODELS[kind]
    plan = rule.network_plan(_stand_in(shape))
    if plan.model_kinds is not None and kind not in plan.model_kinds:
        return None
    model = spec.format(n=int(np.prod(plan.input_shape))) if kind == "mlp" else spec
    if not plan.readout and kind == "mlp":
        model = plan.default_model
    factory = crossbar_factory(parse_device("exact"))
    net = build_network(model, plan.input_shape, 5, factory, seed=1, readout=plan.readout)
    rule.attach(net, factory, np.random.default_rng(1))
    rng = np.random.default_rng(3)
    for _ in range(STEPS):
        x = rng.normal(size=(BATCH, *shape)).astype(np.float32)  # the data's shape (ff adds its label inputs)
        y = rng.integers(0, 5, BATCH)
        if rule.self_supervised:
            batch = Pairs(backend.asarray(x), backend.asarray(x[::-1].copy()), next_row(2 * BATCH))
        else:
            batch = backend.asarray(x)
        rule.step(net, batch, y, LR)
    return [backend.to_numpy(c.weights()) for c in net.crossbars()], net.take_counts()


def compare(rule_name: str, options: dict, kind: str, device_xp: str) -> dict:
    """One case: the rule on `kind` with NumPy and with `device_xp`."""
    try:
        reference = run_side("numpy", rule_name, options, kind)
        if reference is None:
            return {"status": "n/a"}
        other = run_side(device_xp, rule_name, options, kind)
    except Exception as err:  # recorded: the other cases still run
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        return {"status": "failed", "error": last}
    (w_ref, counts_ref), (w_dev, counts_dev) = reference, other
    worst = max(float(np.max(np.abs(a - b) / (1e-5 / 1e-3 + np.abs(a)))) for a, b in zip(w_ref, w_dev))
    same = all(np.allclose(b, a, rtol=1e-3, atol=1e-5) for a, b in zip(w_ref, w_dev)) and counts_ref == counts_dev
    return {"status": "ok" if same else "differs", "max_rel_diff": worst, "counts_equal": counts_ref == counts_dev}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--dry-run", action="store_true", help="NumPy against NumPy (no GPU needed)")
    args = ap.parse_args()
    device_xp = "numpy" if args.dry_run else "cupy"
    try:
        backend.use(device_xp)
    except RuntimeError as err:
        print(f"gpu_parity: {err} (--dry-run checks the script on NumPy)", file=sys.stderr)
        return 2
    rules = [(name, {}) for name in BUILTIN] + VARIANTS
    results = {f"{name}{''.join(f' {k}={v}' for k, v in options.items())} {kind}": compare(name, options, kind, device_xp)
               for name, options in rules for kind in MODELS}
    for case, result in results.items():
        print(f"{case:32s} {result['status']:8s} {result.get('max_rel_diff', result.get('error', ''))}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device_xp": device_xp, "cases": results}, f, indent=2)
    return 0 if all(r["status"] in ("ok", "n/a") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
