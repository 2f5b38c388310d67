"""Train one network with one rule on one device; write and resume results/runs/<id>/.

Test accuracy is measured twice per epoch: with analog reads (what the chip would compute) and
with the learned weights read out and run exactly (`exact_readout`: training quality without
inference noise). After every epoch the run folder gets, each written atomically: metrics.csv,
a checkpoint (experiments/checkpoint.py) and summary.json with status `running`. A run that is
interrupted (Ctrl-C, SIGTERM), killed or finished continues from its last checkpoint with
`resume_config` + `train(..., resume=run_dir)`; on the exact path 2 + 2 epochs equal 4 bit for bit.
A run killed after its last epoch (in the final evaluation) is closed by the same resume.

One process writes a run folder at a time (results.one_writer). Every run ends in one status in
summary.json: finished; interrupted; diverged (a loss or weight not finite, or the training loss
above DIVERGED_FACTOR x the first step's for DIVERGED_EPOCHS epochs in a row); crashed (any other
error: its one line in summary.json, the traceback in error.log).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from hilt.analog import backend
from hilt.analog.network import EVAL_BATCH, Network, build_network, crossbar_factory
from hilt.analog.optim import make_optimizer
from hilt.data import load_dataset
from hilt.errors import DivergenceError, HiltError
from hilt.experiments import checkpoint
from hilt.experiments.alignment import mean_alignment
from hilt.experiments.config import TrainConfig, flag
from hilt.experiments.cost import check_cost_table, estimate, load_cost_table, totals
from hilt.experiments.results import versions
from hilt.experiments.run_folder import CONFIG, MemoryFolder, RunFolder
from hilt.experiments.schedule import parse_schedule
from hilt.rules import make_rule, resolve
from hilt.rules.base import output_metrics
from hilt.rules.losses import cross_entropy
from hilt.rules.probe import probe
from hilt.seeds import stream


# The best epoch (--keep-best) is picked on validation accuracy when the data has a validation set
# (--data-set validation=F), else on test accuracy (optimistic: say so when reporting it).


def selection_metric(data) -> str:
    return "val_accuracy" if data.x_val is not None else "test_accuracy"


def validate(cfg: TrainConfig) -> None:
    """HiltError for settings that cannot run, found without loading data or building a network."""
    _check(cfg)
    make_rule(cfg.rule, **cfg.rule_options)


DIVERGED_FACTOR, DIVERGED_EPOCHS = 10.0, 2
FLOAT32 = np.finfo(np.float32)


def check_float32(flag: str, value) -> None:
    """The run computes in float32: a nonzero number it would flush to 0 or overflow is bad input."""
    if isinstance(value, float) and value != 0 and math.isfinite(value) and not FLOAT32.tiny <= abs(value) <= FLOAT32.max:
        raise HiltError(f"{flag} {value!r}: outside float32's normal range ({FLOAT32.tiny:.3g} to {FLOAT32.max:.3g} "
                        "in size); the run computes in float32")


def _check(cfg: TrainConfig):
    """HiltError for settings that cannot run; the resolved DeviceSpec otherwise."""
    for key, value in [("lr", cfg.lr), ("momentum", cfg.momentum), ("weight_decay", cfg.weight_decay),
                       *resolve(cfg.rule).typed(cfg.rule_options).items()]:
        check_float32(flag(key), value)
    if cfg.out is not None and not str(cfg.out).strip():
        raise HiltError(f"--out {cfg.out!r}: give a folder for the run folders (default results/runs)")
    if cfg.seed < 0:
        raise HiltError(f"--seed must be >= 0 (got {cfg.seed})")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise HiltError(f"--lr must be a finite number > 0 (got {cfg.lr})")
    if cfg.epochs < 1:
        raise HiltError(f"--epochs must be >= 1 (got {cfg.epochs})")
    parse_schedule(cfg.lr_schedule)
    if cfg.eval_every < 1:
        raise HiltError(f"--eval-every must be >= 1 (got {cfg.eval_every})")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise HiltError(f"--batch-size must be >= 1 (got {cfg.batch_size})")
    if not 0 <= cfg.momentum < 1:
        raise HiltError(f"--momentum must be in [0, 1) (got {cfg.momentum})")
    if not (cfg.weight_decay >= 0 and math.isfinite(cfg.weight_decay)):
        raise HiltError(f"--weight-decay must be a finite number >= 0 (got {cfg.weight_decay})")
    spec = cfg.device_spec()
    if not spec.is_exact and (cfg.optimizer != "sgd" or cfg.momentum or cfg.weight_decay):
        raise HiltError(
            f"device {cfg.device!r} updates by pulses (the device is the optimizer): "
            "--optimizer/--momentum/--weight-decay apply to --device exact only"
        )
    return spec


def held_out_score(rule, net: Network, data, batch_size: int = EVAL_BATCH) -> dict:
    """Test loss and accuracy of a network trained by `rule`, scored by the rule's own prediction
    (`rule.fit_readout`, then `rule.predict` batch by batch): accuracy of the largest score; loss,
    the rule's output loss of the scores (cross-entropy for a rule without one, such as a
    self-supervised rule's linear probe)."""
    rule.fit_readout(net, data)
    loss = rule.loss or cross_entropy
    xp = backend.xp()
    total, correct = 0.0, 0
    for i in range(0, len(data.x_test), batch_size):
        scores = rule.predict(net, backend.asarray(data.x_test[i : i + batch_size]))
        m = output_metrics(scores, data.y_test[i : i + batch_size], loss(scores, xp.asarray(data.y_test[i : i + batch_size]))[0])
        total += m["loss_sum"]
        correct += m["correct"]
    return {"loss": total / len(data.x_test), "accuracy": correct / len(data.x_test)}


@dataclass
class Setup:
    """Everything a run is built from, validated (shared by train and other experiments)."""

    cfg: TrainConfig
    data: object
    net: Network
    rule: object
    spec: object  # the DeviceSpec, resolved once (devices.parse_device)


def build(cfg: TrainConfig) -> Setup:
    spec = _check(cfg)
    # config.json holds the device and the cost table themselves, not their paths
    cfg = replace(cfg, device_definition=spec.definition,
                  cost_table=check_cost_table(cfg.cost_table, "cost_table") if cfg.cost_table else load_cost_table())
    rule = make_rule(cfg.rule, **cfg.rule_options)
    backend.select(analog=not spec.is_exact)
    data = load_dataset(cfg.dataset, cfg.data_set, seed=cfg.seed, data_dir=cfg.data_dir)
    default_model = data.default_encoder if rule.self_supervised else data.default_model
    cfg = replace(cfg, model=cfg.model or default_model, batch_size=cfg.batch_size or data.default_batch_size)
    new_optimizer = lambda: make_optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay)  # noqa: E731
    try:
        new_optimizer()
    except ValueError as err:
        raise HiltError(str(err)) from None
    factory = crossbar_factory(spec, new_optimizer)
    net = build_network(cfg.model, data.input_shape, data.n_classes, factory,
                        seed=cfg.seed, activation=cfg.activation, readout=not rule.self_supervised)
    rule.attach(net, factory, stream(cfg.seed, "rule_matrices"))
    return Setup(cfg, data, net, rule, spec)


def _field_ok(value, default) -> bool:
    """A config.json value has the type of the TrainConfig field (judged by its default)."""
    if default is None or value is None:
        return value is None or isinstance(value, (str, int, dict))
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return isinstance(value, (int, float) if isinstance(default, float) else type(default))


def resume_config(run, given: dict, what: str | None = None, allow_rule_change: bool = False) -> TrainConfig:
    """The TrainConfig of a run folder (a path, or a RunFolder / MemoryFolder), to continue it.
    `given` holds the settings the user named (TrainConfig fields, or rule options such as alpha):
    `epochs` sets the new target, any other must equal the run's, else HiltError naming it; a
    plug-in rule may be named anew (`rule`: moved code), and its source must be the one the run
    started with (its SHA-256) unless `allow_rule_change`. `what` names the folder as the user
    typed it (default "--resume RUN_DIR")."""
    folder = run if isinstance(run, (RunFolder, MemoryFolder)) else RunFolder(run, what or f"--resume {run}")
    config, summary = folder.config(), folder.summary()
    if summary.get("status") == "diverged":
        raise HiltError(f"{folder.what}: the run diverged ({summary.get('error')}); "
                        "start a new run with other settings")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in config and not _field_ok(config[f.name], getattr(defaults, f.name)):
            raise HiltError(f"{folder.what}: {CONFIG} is damaged: {f.name} = {config[f.name]!r} is not a valid value")
    for key in ("rule_params", "rule_source"):
        if not isinstance(config.get(key) or {}, dict):
            raise HiltError(f"{folder.what}: {CONFIG} is damaged: {key} is not an object")
    config.setdefault("rule_params", {})
    source = config.get("rule_source")
    cfg = TrainConfig(**{f.name: config[f.name] for f in fields(TrainConfig) if f.name in config})
    for key, value in given.items():
        if key == "epochs" or (key == "rule" and source):
            continue
        stored = config["rule_params"][key] if key in config["rule_params"] else getattr(cfg, key, None)
        if value != stored:
            raise HiltError(f"--resume: {flag(key)} {value} differs from the run's {stored}; a resumed run "
                            "keeps its settings (only --epochs may change)")
    if source:
        cfg = replace(cfg, rule=_plugin_rule(folder, source, given.get("rule"), allow_rule_change))
    return replace(cfg, epochs=given.get("epochs", summary.get("epochs_target", cfg.epochs)))


def _plugin_rule(folder, source: dict, given: str | None, allow_change: bool) -> str:
    """The spec to import a run's plug-in rule from: the one the user gives, else the file the run
    recorded (its absolute path), else the spec as the run was started. HiltError when its source
    differs from the recorded SHA-256 (unless `allow_change`)."""
    recorded = source.get("path") if str(source.get("source", "")).startswith("file") else None
    spec = given or (f"{recorded}:{source.get('class')}" if recorded else source.get("spec"))
    try:
        info = resolve(spec)
    except HiltError as err:
        raise HiltError(f"{folder.what}: the run's rule cannot be imported ({err}); "
                        "name where it is now with --rule PATH.py:Class or module:Class") from None
    if info.sha256() != source.get("sha256") and not allow_change:
        raise HiltError(f"{folder.what}: rule {spec} is not the code the run started with (its source "
                        f"{info.file} has SHA-256 {str(info.sha256())[:12]}..., the run recorded "
                        f"{str(source.get('sha256'))[:12]}...); pass --allow-rule-change to continue with it")
    return spec


@dataclass
class Run:
    """An opened run folder: new (config.json written) or to be continued from its checkpoint."""

    folder: RunFolder
    ckpt: checkpoint.Checkpoint | None = None
    resumes: list[dict] = field(default_factory=list)

    @property
    def run_dir(self) -> Path | None:
        return self.folder.path


def open_run(setup: Setup, resume=None, run_dir: Path | None = None) -> Run:
    """Make a new run folder with config.json (named by time under cfg.out, or exactly `run_dir`;
    in memory when cfg.out is None), or open `resume` (a path or a folder; its config from
    `resume_config`) and check that its checkpoint can continue to setup.cfg.epochs (HiltError
    otherwise). A run killed in its final evaluation (checkpoint at the target, status not
    finished) opens too: training it only closes it."""
    cfg = setup.cfg
    if resume is None:
        if run_dir is not None:
            folder = RunFolder.at(run_dir)
        elif cfg.out is None:
            folder = MemoryFolder()
        else:
            folder = RunFolder.create(Path(cfg.out), f"{cfg.dataset}-{cfg.device_label}-{cfg.rule_label}-s{cfg.seed}")
        folder.write_config(_config_record(setup))
        return Run(folder)
    folder = resume if isinstance(resume, (RunFolder, MemoryFolder)) else RunFolder(resume, f"--resume {resume}")
    ckpt, summary = folder.checkpoint(), folder.summary()
    closing = ckpt.epoch == cfg.epochs and summary.get("status") != "finished"
    if ckpt.epoch >= cfg.epochs and not closing:
        raise HiltError(f"{folder.what}: the run already has {ckpt.epoch} epochs; "
                        f"pass --epochs N with N > {ckpt.epoch} to continue it")
    resumes = summary.get("resumes", []) + [{"from_epoch": ckpt.epoch, "to_epochs": cfg.epochs}]
    return Run(folder, ckpt, resumes)


def train(
    setup: Setup,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[dict, dict], None] | None = None,
    run: Run | None = None,
) -> dict:
    """Run a built setup (see `build`) in `run` (default: a new run folder, see `open_run`),
    holding the folder's lock. Returns the summary also written to summary.json; its status is
    finished, interrupted (KeyboardInterrupt, which SIGTERM becomes in the CLI), diverged or crashed
    (both with `error`). A HiltError inside the run is re-raised after the status is written."""
    run = run or open_run(setup)
    with run.folder.lock():
        return Trainer(setup, run, on_step, on_epoch).run()


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
        self.summary = {"status": "running", "run_dir": self.folder.path and str(self.folder.path), "dataset": self.cfg.dataset,
                        "model": self.net.spec, "device": self.cfg.device, "update": setup.spec.update,
                        "rule": self.cfg.rule, "seed": self.cfg.seed, "epochs": self.done,
                        "epochs_target": self.cfg.epochs}
        if run.resumes:
            self.summary["resumes"] = run.resumes
        self.alignment_batches = []
        if self.cfg.log_alignment:
            fixed = stream(self.cfg.seed, "alignment_batches")
            picks = np.array_split(fixed.permutation(self.n)[: 5 * self.cfg.batch_size], 5)
            self.alignment_batches = [self.batch(idx, fixed) for idx in picks]

    def wall(self) -> float:
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
        self.summary.update(status=status, epochs=self.done, wall_time_s=self.wall(), **self.cost_summary(), **extra)
        self.folder.write_summary(self.summary)
        return self.summary

    def check_loss_growth(self, epoch: int) -> None:
        """Diverged: the training loss above DIVERGED_FACTOR x the first step's for DIVERGED_EPOCHS epochs."""
        losses = [r["loss"] for r in self.rows if r["split"] == "train"][-DIVERGED_EPOCHS:]
        if self.initial_loss and len(losses) == DIVERGED_EPOCHS and min(losses) > DIVERGED_FACTOR * self.initial_loss:
            raise DivergenceError(f"epoch {epoch}: the training loss ({losses[-1]:.4g}) has stayed above "
                                  f"{DIVERGED_FACTOR:g}x its initial value ({self.initial_loss:.4g}) for "
                                  f"{DIVERGED_EPOCHS} epochs")

    def check_weights(self, epoch: int) -> None:
        matrices = {f"layer {k}": c for k, c in enumerate(self.net.crossbars(), 1)} | self.net.aux
        for what, crossbar in matrices.items():
            if not bool(self.xp.isfinite(self.xp.asarray(crossbar.weights())).all()):
                raise DivergenceError(f"epoch {epoch}: weights of {what} are not finite")

    def costs(self) -> dict:
        """What the crossbars did since the last call (analog/costs.py) and its estimates (experiments/cost.py)."""
        counts = self.net.take_counts()
        return {**counts, **estimate(counts, self.cfg.cost_table)}

    def cost_summary(self) -> dict:
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
        train_row = next(r for r in reversed(self.rows) if r["split"] == "train")
        test = self.rows[-1]
        extra = {}
        if self.rule.self_supervised:
            per_layer = probe(self.net, self.rule.pools(self.net), self.data, per_layer=True).per_layer
            extra["probe_accuracy_per_layer"] = per_layer
        return {"train_loss": train_row["loss"], "train_accuracy": train_row["accuracy"], "test_loss": test["loss"],
                "test_accuracy": test["accuracy"], "test_accuracy_exact_readout": test["accuracy_exact_readout"], **extra}

    def run(self) -> dict:
        # Divergence is detected and reported here; numpy need not warn on the way there.
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
                return self.finish("diverged", error=str(err))
            except KeyboardInterrupt:
                return self.finish("interrupted")
            except HiltError as err:
                self.finish("crashed", error=str(err))
                raise
            except Exception as err:  # a bug or the environment (disk, memory): one line, the traceback kept
                self.folder.write_error(traceback.format_exc())
                return self.finish("crashed", error=f"{type(err).__name__}: {err}".splitlines()[0])
        return self.finish("finished", **final)


def _config_record(setup: Setup) -> dict:
    """config.json: every setting (resolved), the effective device and rule parameters, versions."""
    cfg, net, rule = setup.cfg, setup.net, setup.rule
    spec = setup.spec
    record = {
        **asdict(cfg),
        "model": net.spec,
        "rule_params": rule.params(),
        "rule_source": resolve(cfg.rule).record(),  # a plug-in's file and SHA-256 (None: built-in)
        "device_params": spec.describe(),
        "array_backend": backend.xp().__name__,
        "versions": versions(),
        "reproducibility": "exact device: bit for bit per seed; analog devices: in distribution only "
        "(aihwkit's read and pulse noise is seeded from the clock)",
        # aihwkit seeds only device-to-device spread (construction_seed) from Python, not its
        # cycle-to-cycle read and pulse noise
        "analog_noise_seeded": None if spec.is_exact else False,
    }
    if not spec.is_exact:
        record["device_seed"] = spec.device_seed
    return record
