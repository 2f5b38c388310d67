"""Train one network with one rule on one device; write and resume results/runs/<id>/.

Test accuracy is measured twice per epoch: with analog reads (what the chip would compute) and
with the learned weights read out and run exactly (`exact_readout`: training quality without
inference noise). After every epoch the run folder gets, each written atomically: metrics.csv,
a checkpoint (experiments/run/checkpoint.py) and summary.json with status `running`. A run that is
interrupted (Ctrl-C, SIGTERM), killed or finished continues from its last checkpoint with
`resume_config` + `train(..., resume=run_dir)`; on the exact path 2 + 2 epochs equal 4 bit for bit.
A run killed after its last epoch (in the final evaluation) is closed by the same resume.

One process writes a run folder at a time (files.one_writer). Every run ends in one status in
summary.json: finished; interrupted; diverged (a loss or weight not finite, or the training loss
above DIVERGED_FACTOR x the first step's for DIVERGED_EPOCHS epochs in a row); crashed (any other
error: its one line in summary.json, the traceback in error.log).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from hilt import shutdown
from hilt.analog import backend
from hilt.errors import DivergenceError, HiltError
from hilt.experiments.measure.alignment import mean_alignment
from hilt.experiments.measure.cost import estimate, totals
from hilt.experiments.run import checkpoint
from hilt.experiments.run.config import RUN_SETTINGS
from hilt.experiments.run.events import FOLDER as EVENTS, EventLog
from hilt.experiments.run.resume import Run, open_run
from hilt.experiments.run.run_folder import RunStatus
from hilt.experiments.run.schedule import parse_schedule
from hilt.experiments.run.scoring import held_out_score, selection_metric
from hilt.experiments.run.setup import Setup
from hilt.rules.probe import probe
from hilt.seeds import stream

# the settings a run's event file gives TensorBoard's hparams view (with the rule's options)
HPARAMS = (*RUN_SETTINGS, "epochs", "seed")

DIVERGED_FACTOR, DIVERGED_EPOCHS = 10.0, 2


def train(
    setup: Setup,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[dict, dict], None] | None = None,
    run: Run | None = None,
) -> dict:
    """Run a built setup (see `build`) in `run` (default: a new run folder, see `open_run`),
    holding the folder's lock. Returns the summary also written to summary.json; its status is
    finished, interrupted (KeyboardInterrupt, which SIGTERM becomes in the CLI), diverged or crashed
    (both with `error`). A HiltError inside the run is re-raised after the status is written. A
    new run interrupted before its first checkpoint leaves no folder (KeyboardInterrupt is
    re-raised): there is nothing to resume."""
    run = run or open_run(setup)
    try:
        with run.folder.lock():
            return Trainer(setup, run, on_step, on_epoch).run()
    except KeyboardInterrupt:
        if run.ckpt is None:  # a new run stopped before its first checkpoint: nothing to resume, nothing kept
            run.folder.discard()
        raise


class Trainer:
    """One run's training loop: its state (metrics rows, best epoch, the first step's loss) and
    the steps of an epoch as methods. Made and run by `train`, inside the folder's lock."""

    def __init__(self, setup: Setup, run: Run, on_step=None, on_epoch=None):
        self.setup, self.folder, self.fresh = setup, run.folder, run.ckpt is None
        self.cfg, self.data, self.net, self.rule = setup.cfg, setup.data, setup.net, setup.rule
        self.on_step, self.on_epoch = on_step, on_epoch
        ckpt = run.ckpt
        self.order = stream(self.cfg.seed, "data_order")
        if ckpt:
            checkpoint.restore(self.net, ckpt, self.folder.what)
            try:
                self.order.bit_generator.state = ckpt.order_rng
            except (TypeError, ValueError, KeyError):
                raise HiltError(f"{self.folder.what}: {checkpoint.LAST} is damaged (its data-order state)") from None
        self.xp = backend.xp()
        # Self-supervised rules draw their views from the host arrays (data.pairs): no device copy for them.
        if not self.rule.self_supervised:
            self.x_train, self.y_train = backend.asarray(self.data.x_train), self.xp.asarray(self.data.y_train)
        self.n = len(self.data.ssl_images if self.rule.self_supervised else self.data.x_train)
        self.steps = -(-self.n // self.cfg.batch_size)
        self.schedule = parse_schedule(self.cfg.lr_schedule)
        self.rows: list[dict] = list(ckpt.rows) if ckpt else []
        self.best = dict(ckpt.best) if ckpt else {}
        self.initial_loss = ckpt.initial_loss if ckpt else None
        self.done = ckpt.epoch if ckpt else 0
        self.wall_before = ckpt.wall_time_s if ckpt else 0.0
        self.start = time.perf_counter()
        self.selection = selection_metric(self.data)
        self.summary = {"status": RunStatus.RUNNING, "run_dir": self.folder.path and str(self.folder.path), "dataset": self.cfg.dataset,
                        "model": self.net.spec, "device": self.cfg.device, "update": setup.spec.update,
                        "rule": self.cfg.rule, "seed": self.cfg.seed, "epochs": self.done,
                        "epochs_target": self.cfg.epochs}
        if run.resumes:
            self.summary["resumes"] = run.resumes
        self.events = EventLog(Path(self.folder.path) / EVENTS) if self.folder.path and self.cfg.tensorboard else None
        self.logged = len(self.rows)  # rows a resumed run's earlier event files hold already
        self.alignment_batches = []
        if self.cfg.log_alignment:
            fixed = stream(self.cfg.seed, "alignment_batches")
            picks = np.array_split(fixed.permutation(self.n)[: 5 * self.cfg.batch_size], 5)
            self.alignment_batches = [self.batch(idx, fixed) for idx in picks]

    def wall(self) -> float:
        """The run's training wall time so far, in seconds (resumed parts included)."""
        return round(self.wall_before + time.perf_counter() - self.start, 3)

    def batch(self, idx: np.ndarray, rng: np.random.Generator):
        """(x, y) of the training samples idx; for a self-supervised rule, views of its images and no labels."""
        if self.rule.self_supervised:
            return self.data.pairs(idx, rng), None
        rows = self.xp.asarray(idx)
        return self.data.augmented(self.x_train[rows], rng), self.y_train[rows]

    def evaluate_test(self, epoch: int) -> None:
        """A val row (when the data has a validation set), then the test row."""
        exact_net = self.net if self.setup.spec.is_exact else self.net.exact_copy()
        held_out = ([("val", self.data.validation())] if self.data.x_val is not None else []) + [("test", self.data)]
        self.net.take_counts()
        for split, data in held_out:
            score = held_out_score(self.rule, self.net, data)
            costs = self.costs()
            exact = score if exact_net is self.net else held_out_score(self.rule, exact_net, data)
            self.rows.append({"epoch": epoch, "split": split, "loss": score["loss"], "accuracy": score["accuracy"],
                              "accuracy_exact_readout": exact["accuracy"], **costs})

    def end_of_epoch(self, epoch: int) -> None:
        """metrics.csv, then the checkpoint(s), then summary.json: a resume reads the checkpoint's rows."""
        rows, best, selection = self.rows, self.best, self.selection
        self.folder.write_metrics(rows)
        if self.events:
            self.events.rows(rows[self.logged:])
            self.logged = len(rows)
        evaluated = rows[-1]["split"] == "test"
        score = rows[-2 if selection == "val_accuracy" else -1]["accuracy"] if evaluated else -math.inf
        is_best = self.cfg.keep_best and score > best.get(selection, -math.inf)
        if is_best:
            best.update({"epoch": epoch, selection: score, "test_accuracy_at_best": rows[-1]["accuracy"]})
        self.folder.write_checkpoint(checkpoint.Checkpoint(epoch, self.net.state_dict(), self.order.bit_generator.state,
                                                           rows, self.wall(), dict(best), self.initial_loss), best=is_best)
        self.done = epoch
        self.summary.update(epochs=epoch, wall_time_s=self.wall(), **self.cost_summary())
        if best:
            self.summary.update(best_epoch=best["epoch"], **{f"best_{selection}": best[selection]})
            if selection != "test_accuracy":
                self.summary["test_accuracy_at_best"] = best["test_accuracy_at_best"]
        self.folder.write_summary(self.summary)

    def finish(self, status: str, **extra) -> dict:
        """Write summary.json with the final status (and extra fields); return it."""
        self.summary.update(status=status, epochs=self.done, wall_time_s=self.wall(), **self.cost_summary(), **extra)
        self.folder.write_summary(self.summary)
        if self.events:
            if status == RunStatus.FINISHED:
                settings = {**{k: v for k, v in asdict(self.cfg).items() if k in HPARAMS}, **self.rule.params()}
                metrics = {k: v for k, v in self.summary.items()
                           if k.startswith(("train_", "val_", "test_", "best_")) or k == "wall_time_s"}
                self.events.hparams(settings, metrics, self.done)
            self.events.close()
        return self.summary

    def interrupted(self) -> dict:
        """Stopped by a signal: status interrupted at the last checkpoint (a new run without one
        re-raises: `train` removes its folder)."""
        if not self.folder.has_checkpoint():
            raise KeyboardInterrupt
        return self.finish(RunStatus.INTERRUPTED)

    def check_loss_growth(self, epoch: int) -> None:
        """Diverged: the training loss above DIVERGED_FACTOR x the first step's for DIVERGED_EPOCHS epochs."""
        losses = [r["loss"] for r in self.rows if r["split"] == "train"][-DIVERGED_EPOCHS:]
        if self.initial_loss and len(losses) == DIVERGED_EPOCHS and min(losses) > DIVERGED_FACTOR * self.initial_loss:
            raise DivergenceError(f"epoch {epoch}: the training loss ({losses[-1]:.4g}) has stayed above "
                                  f"{DIVERGED_FACTOR:g}x its initial value ({self.initial_loss:.4g}) for "
                                  f"{DIVERGED_EPOCHS} epochs")

    def check_weights(self, epoch: int) -> None:
        """DivergenceError naming the crossbar whose weights are not finite."""
        matrices = {f"layer {k}": c for k, c in enumerate(self.net.crossbars(), 1)} | self.net.aux
        for what, crossbar in matrices.items():
            if not bool(self.xp.isfinite(self.xp.asarray(crossbar.weights())).all()):
                raise DivergenceError(f"epoch {epoch}: weights of {what} are not finite")

    def costs(self) -> dict:
        """What the crossbars did since the last call (analog/costs.py) and its estimates (experiments/measure/cost.py)."""
        counts = self.net.take_counts()
        return {**counts, **estimate(counts, self.cfg.cost_table)}

    def cost_summary(self) -> dict:
        """The summary's hardware-cost fields: training and evaluation totals (counts, energy in J,
        latency in s)."""
        train, held_out = totals(self.rows, ("train",)), totals(self.rows, ("val", "test"))
        return {"train_energy_j": train["energy_j"], "train_latency_s": train["latency_s"],
                "train_expected_pulses": train["expected_pulses"], "train_reads": train["forward_reads"] + train["transposed_reads"],
                "costs": {"train": train, "eval": held_out, "table": self.cfg.cost_table.get("name", ""),
                          "note": "counts from the crossbars; energy_j and latency_s are estimates from the cost table"}}

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set; its metrics row (with what the crossbars did)."""
        cfg, perm = self.cfg, self.order.permutation(self.n)
        self.net.take_counts()
        loss_sum = correct = 0.0
        for step in range(self.steps):
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x, y = self.batch(idx, self.order)
            try:
                m = self.rule.step(self.net, x, y, self.schedule.lr(cfg.lr, (epoch - 1) * self.steps + step, self.steps))
            except DivergenceError as err:
                raise DivergenceError(f"epoch {epoch}, step {step + 1}: {err}") from None
            if not math.isfinite(m["loss_sum"]):
                raise DivergenceError(f"epoch {epoch}, step {step + 1}: the training loss is not finite")
            if self.initial_loss is None:
                self.initial_loss = m["loss_sum"] / len(idx)
            loss_sum += m["loss_sum"]
            correct += m["correct"]
            if self.on_step:
                self.on_step(epoch, step + 1, self.steps)
        costs = self.costs()
        self.check_weights(epoch)
        extra = {}
        if self.alignment_batches:
            extra = {f"align_{k}": c for k, c in enumerate(mean_alignment(self.net, self.rule, self.alignment_batches), 1)}
            self.net.take_counts()  # a metric's reads, not the rule's
        return {"epoch": epoch, "split": "train", "loss": loss_sum / self.n, "accuracy": correct / self.n, **extra, **costs}

    def final_metrics(self) -> dict:
        """The summary's final metrics: the last training row's, the last test row's, per-layer
        probes for self-supervised rules."""
        train_row = next(r for r in reversed(self.rows) if r["split"] == "train")
        test = self.rows[-1]
        extra = {}
        if self.rule.self_supervised:
            per_layer = probe(lambda x: self.rule.features(self.net, x), self.data, per_layer=True).per_layer
            extra["probe_accuracy_per_layer"] = per_layer
        return {"train_loss": train_row["loss"], "train_accuracy": train_row["accuracy"], "test_loss": test["loss"],
                "test_accuracy": test["accuracy"], "test_accuracy_exact_readout": test["accuracy_exact_readout"], **extra}

    def run(self) -> dict:
        # Divergence is detected and reported here; numpy need not warn on the way there.
        """Train to the target epochs; the summary with its final status."""
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                if self.fresh:
                    self.evaluate_test(0)
                    self.end_of_epoch(0)
                for epoch in range(self.done + 1, self.cfg.epochs + 1):
                    train_row = self.train_epoch(epoch)
                    self.rows.append(train_row)
                    self.check_loss_growth(epoch)
                    if epoch % self.cfg.eval_every == 0 or epoch == self.cfg.epochs:
                        self.evaluate_test(epoch)
                    self.end_of_epoch(epoch)
                    if self.on_epoch:
                        self.on_epoch(train_row, next(r for r in reversed(self.rows) if r["split"] == "test"))
                final = self.final_metrics()
            except DivergenceError as err:
                return self.finish(RunStatus.DIVERGED, error=str(err))
            except KeyboardInterrupt:
                return self.interrupted()
            except HiltError as err:
                self.finish(RunStatus.CRASHED, error=str(err))
                raise
            except Exception as err:  # a bug or the environment (disk, memory): one line, the traceback kept
                if shutdown.interrupted(err):  # a library's echo of Ctrl-C or SIGTERM
                    return self.interrupted()
                self.folder.write_error(traceback.format_exc())
                return self.finish(RunStatus.CRASHED, error=f"{type(err).__name__}: {err}".splitlines()[0])
        return self.finish(RunStatus.FINISHED, **final)
