"""Equilibrium propagation's theorem, measured: the relative error of the EP estimate against the
gradient at the equilibrium (torch autograd through the converged relaxation, float64) as beta
shrinks, for the positive, negative and centred forms, and the per-layer cosine at beta = 1e-3.

    python bench/ep_theorem.py [--out results/ep_theorem]     # ep_beta_error.csv, ep_beta_error.png

An MLP 6-5-4-5 (the test's network: default init scaled by 0.6, so the relaxation contracts),
300 sweeps per phase, a batch of 4, seeds 0-4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hilt.analog.network import build_network, crossbar_factory
from hilt.devices import parse_device
from hilt.experiments.measure.alignment import cosine
from hilt.experiments.reference.torch_twin import ep_gradient
from hilt.experiments.run.files import write_csv
from hilt.rules import make_rule

BETAS = [0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625]


def case(seed: int):
    net = build_network("mlp:6-5-4-5", (6,), 5, crossbar_factory(parse_device("exact")), seed=seed)
    for crossbar in net.crossbars():
        crossbar.program(0.6 * np.asarray(crossbar.weights()))
    rng = np.random.default_rng(seed)
    return net, rng.normal(size=(4, 6)).astype(np.float32), rng.integers(0, 5, 4)


def estimate(net, x, y, beta: float, variant: str) -> list:
    rule = make_rule("ep", beta=beta, free_steps=300, nudged_steps=300, variant=variant)
    return [np.asarray(b.outer(*sig), dtype=np.float64) for b, sig in zip(net.blocks, rule.signals(net, x, y).blocks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/ep_theorem")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        net, x, y = case(seed)
        truth = ep_gradient(net, x, y, 5)
        norm = np.sqrt(sum((t ** 2).sum() for t in truth))
        for variant in ("positive", "negative", "centred"):
            for beta in BETAS:
                g = estimate(net, x, y, beta, variant)
                error = np.sqrt(sum(((a - t) ** 2).sum() for a, t in zip(g, truth))) / norm
                rows.append({"seed": seed, "variant": variant, "beta": beta, "relative_error": error})
        cos = [cosine(a, t) for a, t in zip(estimate(net, x, y, 1e-3, "centred"), truth)]
        rows += [{"seed": seed, "variant": "centred", "beta": 1e-3, "layer": k, "cosine": c} for k, c in enumerate(cos, 1)]
    out = Path(args.out)
    write_csv(out / "ep_beta_error.csv", rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4))
    for variant in ("positive", "negative", "centred"):
        errors = np.array([[r["relative_error"] for r in rows if r["variant"] == variant and r["seed"] == s
                            and "relative_error" in r] for s in range(args.seeds)])
        mean = errors.mean(0)
        slope = np.polyfit(np.log(BETAS[2:]), np.log(mean[2:]), 1)[0]
        ax.loglog(BETAS, mean, marker="o", label=f"{variant} (slope {slope:.2f} for beta <= 0.1)")
        print(f"{variant}: mean relative error {', '.join(f'{e:.2e}' for e in mean)}; slope {slope:.2f}")
    ax.set(xlabel="beta", ylabel="relative error of the EP estimate", title="EP vs the gradient at the equilibrium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ep_beta_error.png", dpi=110)
    cos = [r["cosine"] for r in rows if "cosine" in r]
    print(f"centred, beta 1e-3: per-layer cosine min {min(cos):.6f} over {len(cos)} layers x seeds")


if __name__ == "__main__":
    main()
