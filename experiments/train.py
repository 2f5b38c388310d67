"""Train one network with one rule on one device; write results/runs/<id>/.

Test accuracy is measured twice per epoch: with analog reads (what the chip would compute) and
with the learned weights read out and run exactly (`exact_readout`: training quality without
inference noise). Files are rewritten atomically after every epoch, so an interrupted or
diverged run keeps everything up to its last finished epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analog import backend
from analog.network import Network, build_network, crossbar_factory
from analog.optim import make_optimizer
from data import load_dataset
from devices import HiltError, parse_device
from experiments.alignment import mean_alignment
from experiments.results import new_run_dir, versions, write_csv, write_json
from rules import make_rule
from rules.base import DivergenceError, output_metrics


@dataclass
class TrainConfig:
    dataset: str = "digits"
    data_set: list[str] = field(default_factory=list)
    model: str | None = None  # None: the dataset's default MLP
    device: str = "rram"
    sets: list[str] = field(default_factory=list)
    rule: str = "bp"
    rule_options: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int | None = None  # None: the dataset's
    lr: float = 0.05
    seed: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    activation: str = "relu"
    log_alignment: bool = False
    out: str = "results/runs"


def _check(cfg: TrainConfig) -> None:
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise HiltError(f"--lr must be a finite number > 0 (got {cfg.lr})")
    if cfg.epochs < 1:
        raise HiltError(f"--epochs must be >= 1 (got {cfg.epochs})")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise HiltError(f"--batch-size must be >= 1 (got {cfg.batch_size})")
    if cfg.momentum and not 0 <= cfg.momentum < 1:
        raise HiltError(f"--momentum must be in [0, 1) (got {cfg.momentum})")
    if cfg.weight_decay < 0:
        raise HiltError(f"--weight-decay must be >= 0 (got {cfg.weight_decay})")
    if cfg.device != "exact" and (cfg.optimizer != "sgd" or cfg.momentum or cfg.weight_decay):
        raise HiltError(
            f"device {cfg.device!r} updates by pulses (the device is the optimizer): "
            "--optimizer/--momentum/--weight-decay apply to --device exact only"
        )


def evaluate(net: Network, x, y, loss, batch_size: int = 500) -> tuple[float, float]:
    """Mean loss and accuracy of the network's output on (x, y)."""
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        a, yb = net.forward(x[i : i + batch_size]), y[i : i + batch_size]
        m = output_metrics(a, yb, loss(a, yb)[0])
        total += m["loss_sum"]
        correct += m["correct"]
    return total / len(x), correct / len(x)


@dataclass
class Setup:
    """Everything a run is built from, validated (shared by train and other experiments)."""

    cfg: TrainConfig
    data: object
    net: Network
    rule: object


def build(cfg: TrainConfig) -> Setup:
    _check(cfg)
    spec = parse_device(cfg.device, cfg.sets, seed=cfg.seed)
    rule = make_rule(cfg.rule, **cfg.rule_options)
    # aihwkit's PyPI tiles are CPU tiles: analog runs stay in NumPy (no host<->GPU copy per read).
    backend.use("auto" if spec.is_exact else "numpy")
    data = load_dataset(cfg.dataset, cfg.data_set, seed=cfg.seed)
    cfg = replace(cfg, model=cfg.model or data.default_model, batch_size=cfg.batch_size or data.default_batch_size)
    new_optimizer = lambda: make_optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay)  # noqa: E731
    try:
        new_optimizer()
    except ValueError as err:
        raise HiltError(str(err)) from None
    factory = crossbar_factory(spec, new_optimizer)
    net = build_network(cfg.model, data.input_shape, data.n_classes, factory,
                        seed=cfg.seed, activation=cfg.activation)
    return Setup(cfg, data, net, rule)


def train(
    setup: Setup,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Run a built setup (see `build`); returns the summary also written to summary.json."""
    cfg, data, net, rule = setup.cfg, setup.data, setup.net, setup.rule
    run_dir = new_run_dir(Path(cfg.out), f"{cfg.dataset}-{cfg.device}-{cfg.rule}-s{cfg.seed}")
    config = {
        **asdict(cfg),
        "model": net.spec,
        "rule_params": rule.params(),
        "device_params": parse_device(cfg.device, cfg.sets, cfg.seed).describe(),
        "array_backend": backend.xp().__name__,
        "versions": versions(),
        "reproducibility": "exact device: bit for bit per seed; analog devices: in distribution only "
        "(aihwkit's read and pulse noise is seeded from the clock)",
    }
    write_json(run_dir / "config.json", config)

    xp = backend.xp()
    x_tr, y_tr = backend.asarray(data.x_train), xp.asarray(data.y_train)
    x_te, y_te = backend.asarray(data.x_test), xp.asarray(data.y_test)
    order = np.random.default_rng(cfg.seed)
    n = len(data.x_train)
    steps = -(-n // cfg.batch_size)
    rows: list[dict] = []
    summary = {"status": "running", "run_dir": str(run_dir)}
    start = time.perf_counter()

    def record(epoch, split, **values):
        rows.append({"epoch": epoch, "split": split, **values})

    probe = []
    if cfg.log_alignment:
        fixed = np.random.default_rng(cfg.seed + 1).permutation(n)
        probe = [(x_tr[xp.asarray(idx)], y_tr[xp.asarray(idx)])
                 for idx in np.array_split(fixed[: 5 * cfg.batch_size], 5)]

    def evaluate_test(epoch):
        loss, acc = evaluate(net, x_te, y_te, rule.loss)
        _, acc_exact = evaluate(net.exact_copy(), x_te, y_te, rule.loss)
        record(epoch, "test", loss=loss, accuracy=acc, accuracy_exact_readout=acc_exact)

    def finish(status, **extra):
        summary.update(status=status, **extra)
        write_csv(run_dir / "metrics.csv", pd.DataFrame(rows))
        write_json(run_dir / "summary.json", summary)

    evaluate_test(0)
    epoch = 0
    # Divergence is detected and reported below; numpy need not warn on the way there.
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for epoch in range(1, cfg.epochs + 1):
                perm = xp.asarray(order.permutation(n))
                loss_sum = correct = 0.0
                for step in range(steps):
                    idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                    try:
                        m = rule.step(net, x_tr[idx], y_tr[idx], cfg.lr)
                    except DivergenceError as err:
                        raise DivergenceError(f"epoch {epoch}, step {step + 1}: {err}") from None
                    if not math.isfinite(m["loss_sum"]):
                        raise DivergenceError(f"epoch {epoch}, step {step + 1}: the training loss is not finite")
                    loss_sum += m["loss_sum"]
                    correct += m["correct"]
                    if on_step:
                        on_step(epoch, step + 1, steps)
                for k, W in enumerate(net.weights()):
                    if not bool(xp.isfinite(xp.asarray(W)).all()):
                        raise DivergenceError(f"epoch {epoch}: weights of layer {k + 1} are not finite")
                extra = {}
                if probe:
                    extra = {f"align_{k}": c for k, c in enumerate(mean_alignment(net, rule, probe), 1)}
                record(epoch, "train", loss=loss_sum / n, accuracy=correct / n, **extra)
                evaluate_test(epoch)
                write_csv(run_dir / "metrics.csv", pd.DataFrame(rows))
                if on_epoch:
                    on_epoch(rows[-2:])
        except DivergenceError as err:
            finish("diverged", error=str(err), epochs=epoch - 1, wall_time_s=round(time.perf_counter() - start, 3))
            raise HiltError(f"training diverged at {err}; results so far kept in {run_dir}") from None
        except KeyboardInterrupt:
            finish("interrupted", epochs=epoch - 1, wall_time_s=round(time.perf_counter() - start, 3))
            raise
    test = rows[-1]
    finish(
        "finished",
        dataset=cfg.dataset,
        model=net.spec,
        device=cfg.device,
        rule=cfg.rule,
        seed=cfg.seed,
        epochs=cfg.epochs,
        train_loss=rows[-2]["loss"],
        train_accuracy=rows[-2]["accuracy"],
        test_loss=test["loss"],
        test_accuracy=test["accuracy"],
        test_accuracy_exact_readout=test["accuracy_exact_readout"],
        wall_time_s=round(time.perf_counter() - start, 3),
    )
    return summary
