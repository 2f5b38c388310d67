"""What loading an analog checkpoint changes, per preset: aihwkit's own unpickling vs hilt's restore.

    python bench/resume_drift.py [--devices rram,pcm,...] [--seeds 0,1,2] [--epochs 5]
    python bench/resume_drift.py --study accuracy --devices rram,rram-ttv2 [--epochs 30]

bp trains on digits (the defaults) for --epochs, then the last checkpoint is loaded twice into a
fresh network: once with aihwkit's plain unpickling of each tile (`AnalogTile.__setstate__`) and
once with hilt's `load_state_dict` (analog_crossbar.restore_tile). Against the saved tile state it
reports, pooled over layers:
- the visible weights: rms and max change, relative to the rms of the saved weights;
- the hidden device weights (persistent_weights*, hidden_weights*): max change in device units;
- test accuracy of the exact readout of the visible weights, saved vs loaded (this changes only
  through the weights, so it shows what the change costs).
Writes results/resume_drift.csv (one row per preset, seed and loader).

`--study accuracy`: final test accuracy of --epochs uninterrupted vs --epochs/2, resumed to
--epochs (the whole resume path: checkpoint file, hilt's restore, data order), paired by seed;
writes results/resume_accuracy.csv.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np


from hilt.analog.analog_crossbar import AnalogCrossbar
from hilt.experiments.run import checkpoint
from hilt.experiments.run.files import write_csv
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.scoring import held_out_score
from hilt.experiments.run.trainer import train

ANALOG = "ideal,rram,rram-sb,pcm,ecram,ecram-mo,capacitor,idealized,rram-mp,rram-ttv2"


def _plain_load(crossbar: AnalogCrossbar, state: dict) -> None:
    from aihwkit.simulator.tiles import AnalogTile

    for (i, j), tile_state in state["tiles"].items():
        tile = AnalogTile.__new__(AnalogTile)
        tile.__setstate__(copy.deepcopy(tile_state))
        crossbar.tiles[i][j] = tile
    crossbar.scale, crossbar._lr = state["scale"], state["lr"]


def _compare(net, saved: dict) -> dict:
    """Visible and hidden weights of `net`'s tiles against the saved tile states."""
    from aihwkit.simulator.tiles.base import AnalogTileStateNames as SN

    d_vis, vis, d_hidden = [], [], [0.0]
    for crossbar, state in zip(net.crossbars(), saved["crossbars"]):
        for (i, j), tile_state in state["tiles"].items():
            tile = crossbar.tiles[i][j].tile
            w0, w1 = tile_state[SN.WEIGHTS].numpy(), tile.get_weights().numpy()
            vis.append(w0.ravel())
            d_vis.append((w1 - w0).ravel())
            names, h0, h1 = tile_state[SN.HIDDEN_PARAMETER_NAMES], tile_state[SN.HIDDEN_PARAMETERS], tile.get_hidden_parameters()
            for k, name in enumerate(names):
                if "weights" in name:
                    d_hidden.append(float(np.abs(h1[k].numpy() - h0[k].numpy()).max()))
    vis, d_vis = np.concatenate(vis), np.concatenate(d_vis)
    rms = float(np.sqrt((vis**2).mean()))
    return {"visible_rms_change_rel": float(np.sqrt((d_vis**2).mean())) / rms,
            "visible_max_change_rel": float(np.abs(d_vis).max()) / rms,
            "hidden_max_change": max(d_hidden)}


def measure(device: str, seed: int, epochs: int) -> list[dict]:
    cfg = TrainConfig(device=device, seed=seed, epochs=epochs)
    with tempfile.TemporaryDirectory() as out:
        setup = build(TrainConfig(**{**cfg.__dict__, "out": out}))
        summary = train(setup)
        ckpt = checkpoint.load(Path(summary["run_dir"]))
    data, rule = setup.data, setup.rule
    exact_acc = lambda net: held_out_score(rule, net.exact_copy(), data)["accuracy"]  # noqa: E731
    saved_acc = summary["test_accuracy_exact_readout"]
    rows = []
    for loader in ("aihwkit", "hilt"):
        net = build(cfg).net
        if loader == "hilt":
            net.load_state_dict(ckpt.network)
        else:
            for crossbar, state in zip(net.crossbars(), ckpt.network["crossbars"]):
                _plain_load(crossbar, state)
        rows.append({"device": device, "seed": seed, "epochs": epochs, "loader": loader, **_compare(net, ckpt.network),
                     "exact_readout_saved": saved_acc, "exact_readout_loaded": exact_acc(net)})
    return rows


def resumed_vs_whole(device: str, seed: int, epochs: int) -> dict:
    from hilt.experiments.run.resume import open_run

    row = {"device": device, "seed": seed, "epochs": epochs, "resumed_at": epochs // 2}
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(device=device, seed=seed, epochs=epochs, out=out)
        row["whole"] = train(build(cfg))["test_accuracy"]
        first = train(build(TrainConfig(**{**cfg.__dict__, "epochs": epochs // 2})))
        setup = build(cfg)
        row["resumed"] = train(setup, run=open_run(setup, Path(first["run_dir"])))["test_accuracy"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=ANALOG)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--study", choices=("drift", "accuracy"), default="drift")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import pandas as pd

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.study == "accuracy":
        frame = pd.DataFrame([resumed_vs_whole(d, s, args.epochs) for d in args.devices.split(",") for s in seeds])
        write_csv(Path(args.out or "results/resume_accuracy.csv"), frame)
        frame["difference"] = frame.resumed - frame.whole
        print(frame.groupby("device", sort=False)[["whole", "resumed", "difference"]].agg(["mean", "std"]).round(4).to_string())
        return

    rows = [r for d in args.devices.split(",") for s in seeds for r in measure(d, s, args.epochs)]
    frame = pd.DataFrame(rows)
    write_csv(Path(args.out or "results/resume_drift.csv"), frame)
    frame["accuracy_change"] = frame.exact_readout_loaded - frame.exact_readout_saved
    cols = ["visible_rms_change_rel", "visible_max_change_rel", "hidden_max_change", "accuracy_change"]
    print(frame.groupby(["device", "loader"], sort=False)[cols].mean().round(4).to_string())


if __name__ == "__main__":
    main()
