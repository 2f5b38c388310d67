"""A self-supervised rule per device and update algorithm: the linear probe of the trained encoder
against the probe of the same encoder untrained (random features).

    python bench/ssl_update_probe.py --rule clapp_pp --dataset mnist5k --epochs 2 \
        --cases exact:sgd,rram:sgd,rram:summed,rram:mp --out results/reference/updates/mnist5k-clapp_pp.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


from hilt.experiments.run.files import write_csv
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.scoring import held_out_score
from hilt.experiments.run.resume import open_run
from hilt.experiments.run.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", default="clapp_pp")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--model", default=None, help="default: the dataset's encoder")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="exact:sgd,rram:sgd,rram:summed,rram:mp", help="DEVICE:UPDATE,...")
    ap.add_argument("--out", default="results/reference/updates/ssl-probe.csv")
    args = ap.parse_args()
    rows = []
    for case in args.cases.split(","):
        device, _, update = case.partition(":")
        cfg = TrainConfig(dataset=args.dataset, model=args.model, rule=args.rule, device=device,
                          update=None if update in ("", "sgd") else update, epochs=args.epochs, seed=args.seed,
                          out="results/runs/ssl_update_probe")
        setup = build(cfg)
        untrained = held_out_score(setup.rule, setup.net, setup.data)["accuracy"]
        summary = train(setup, run=open_run(setup))
        rows.append({"rule": args.rule, "dataset": args.dataset, "model": setup.cfg.model, "device": device,
                     "update": setup.cfg.device_spec().update, "epochs": args.epochs, "seed": args.seed,
                     "untrained_probe": untrained, "probe": summary["test_accuracy"],
                     "wall_s": summary["wall_time_s"]})
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    write_csv(Path(args.out), frame)
    print(frame.to_string())


if __name__ == "__main__":
    main()
