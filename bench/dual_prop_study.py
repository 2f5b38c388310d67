"""Issue-3 acceptance studies of dual propagation on digits (dataset recipe: MLP 64-512-10, batch 10).

    python bench/dual_prop_study.py devices   --seeds 0,1,2   # dp_adjoint vs bp per device
    python bench/dual_prop_study.py alignment --seeds 0,1,2   # final alignment + accuracy, beta x alpha

Runs go through `experiments.run.trainer` (the same code as `hilt train`), `--workers` at a time, each
worker on one thread. Prints mean and std per setting and writes results/dual_prop_<study>.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


from hilt.experiments.run.files import write_csv

NUDGES = [(beta, alpha) for beta in (0.01, 0.1, 1.0) for alpha in (0.0, 0.5, 1.0)]


def _one_thread() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)


def _run(job: dict) -> dict:
    from hilt.experiments.run.config import TrainConfig
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.trainer import train

    cfg = TrainConfig(out="results/runs/dual_prop_study", **job)
    summary = train(build(cfg))
    row = {"device": cfg.device, "rule": cfg.rule, **cfg.rule_options, "seed": cfg.seed,
           "test_accuracy": summary["test_accuracy"], "exact_readout": summary["test_accuracy_exact_readout"],
           "wall_time_s": summary["wall_time_s"]}
    if cfg.log_alignment:
        last = pd.read_csv(Path(summary["run_dir"]) / "metrics.csv").query("split == 'train'").iloc[-1]
        row.update({k: last[k] for k in last.index if k.startswith("align_")})
    return row


def _jobs(study: str, seeds: list[int], devices: list[str], common: dict) -> list[dict]:
    if study == "devices":
        return [{"device": d, "rule": r, "seed": s, **common} for d in devices for r in ("bp", "dp_adjoint")
                for s in seeds]
    return [{"device": d, "rule": "dp_adjoint", "rule_options": {"alpha": a, "beta": b}, "seed": s,
             "log_alignment": True, **common}
            for d in devices for b, a in NUDGES for s in seeds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["devices", "alignment"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--devices", default=None, help="default: rram,rram-mp,rram-ttv2,ecram (devices) or exact,rram")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="device KEY=VALUE for every run")
    ap.add_argument("--model", default=None, help="default: the dataset's MLP")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the dataset's")
    ap.add_argument("--out", default=None, help="default: results/dual_prop_<study>.csv")
    args = ap.parse_args()
    devices = (args.devices or ("rram,rram-mp,rram-ttv2,ecram" if args.study == "devices" else "exact,rram")).split(",")
    common = {"sets": args.sets, "model": args.model, "batch_size": args.batch_size}
    jobs = _jobs(args.study, [int(s) for s in args.seeds.split(",")], devices, common)

    from multiprocessing import get_context

    rows = []
    with get_context("spawn").Pool(args.workers, initializer=_one_thread) as pool:
        for row in pool.imap_unordered(_run, jobs):
            rows.append(row)
            print(row, flush=True)
    frame = pd.DataFrame(rows)
    write_csv(Path(args.out or f"results/dual_prop_{args.study}.csv"), frame)

    keys = ["device", "rule"] if args.study == "devices" else ["device", "beta", "alpha"]
    values = [c for c in frame.columns if c.startswith("align_")] + ["test_accuracy", "wall_time_s"]
    table = frame.groupby(keys).agg({v: ["mean", "std"] for v in values})
    table.columns = [f"{v}_{stat}" for v, stat in table.columns]
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
