"""A run's set-up: its settings validated (one line per mistake, before any data is loaded or a
network built) and everything it is built from (`Setup`: data, network, rule, device spec)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hilt.analog import backend
from hilt.analog.network import plan_network, Network, build_network, check_model, crossbar_factory
from hilt.analog.optim import make_optimizer
from hilt.data import load_dataset
from hilt.errors import HiltError
from hilt.experiments.measure.cost import check_cost_table, load_cost_table
from hilt.experiments.run.config import TrainConfig, flag
from hilt.experiments.run.schedule import parse_schedule
from hilt.rules import make_rule, resolve
from hilt.seeds import check_seed, stream


def validate(cfg: TrainConfig) -> None:
    """HiltError for settings that cannot run, found without loading data or building a network."""
    _check(cfg)
    make_rule(cfg.rule, **cfg.rule_options)


MAX_COUNT = 2**31 - 1  # the largest epochs, batch size or evaluation interval a run takes
_F32 = np.finfo(np.float32)
FLOAT32_TINY, FLOAT32_MAX = float(_F32.tiny), float(_F32.max)  # Python floats: comparing a huge float with NumPy's warns


def check_float32(flag: str, value) -> None:
    """The run computes in float32: a nonzero number it would flush to 0 or overflow is bad input."""
    if isinstance(value, float) and value != 0 and math.isfinite(value) and not FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
        raise HiltError(f"{flag} {value!r}: outside float32's normal range ({FLOAT32_TINY:.3g} to {FLOAT32_MAX:.3g} "
                        "in size); the run computes in float32")


def _check(cfg: TrainConfig):
    """HiltError for settings that cannot run; the resolved DeviceSpec otherwise."""
    for key, value in [("lr", cfg.lr), ("momentum", cfg.momentum), ("weight_decay", cfg.weight_decay),
                       *resolve(cfg.rule).typed(cfg.rule_options).items()]:
        check_float32(flag(key), value)
    if cfg.out is not None and not str(cfg.out).strip():
        raise HiltError(f"--out {cfg.out!r}: give a folder for the run folders (default results/runs)")
    check_seed(cfg.seed)
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise HiltError(f"--lr must be a finite number > 0 (got {cfg.lr})")
    for key, value in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size), ("eval_every", cfg.eval_every)):
        if value is not None and value > MAX_COUNT:  # tables (parquet, int64) and array indices hold these
            raise HiltError(f"{flag(key)} {value}: at most {MAX_COUNT}")
    if cfg.epochs < 1:
        raise HiltError(f"--epochs must be >= 1 (got {cfg.epochs})")
    parse_schedule(cfg.lr_schedule)
    check_model(cfg.model or "mlp:1-1", cfg.activation)  # the spec's form; its fit to the data comes with the data
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


@dataclass
class Setup:
    """Everything a run is built from, validated (shared by train and other experiments)."""

    cfg: TrainConfig
    data: object
    net: Network
    rule: object
    spec: object  # the DeviceSpec, resolved once (devices.parse_device)


def build(cfg: TrainConfig) -> Setup:
    """The run's Setup from its settings: validated, device resolved, data loaded, network built,
    rule attached (HiltError on bad input)."""
    cfg, spec, rule, data, plan, factory = _resolve(cfg)
    net = build_network(cfg.model, plan.input_shape, data.n_classes, factory,
                        seed=cfg.seed, activation=cfg.activation, readout=plan.readout,
                        batch_size=_batch(cfg, rule, data))
    rule.attach(net, factory, stream(cfg.seed, "rule_matrices"))
    return Setup(cfg, data, net, rule, spec)


def check_fits(cfg: TrainConfig, data) -> None:
    """HiltError when the run's network does not fit `data` (the dataset its settings load) or this
    machine's memory, found without building it: what a sweep checks of every point first."""
    cfg, _, rule, data, plan, factory = _resolve(cfg, data)
    plan_network(cfg.model, plan.input_shape, data.n_classes, factory, cfg.activation,
                 readout=plan.readout, batch_size=_batch(cfg, rule, data))


def _batch(cfg: TrainConfig, rule, data) -> int:
    """The most samples one step reads: the batch (no more than the training set), two views per
    image for self-supervised rules."""
    n = len(data.ssl_images if rule.self_supervised else data.x_train)
    return min(cfg.batch_size, n) * (2 if rule.self_supervised else 1)


def _resolve(cfg: TrainConfig, data=None):
    """The settings resolved against the data (loaded unless given): (cfg, spec, rule, data, the
    rule's network plan, the crossbar factory)."""
    spec = _check(cfg)
    # config.json holds the device and the cost table themselves, not their paths
    cfg = replace(cfg, device_definition=spec.definition,
                  cost_table=check_cost_table(cfg.cost_table, "cost_table") if cfg.cost_table else load_cost_table())
    rule = make_rule(cfg.rule, **cfg.rule_options)
    # config.json records the options as the rule uses them (defaults resolved), once
    cfg = replace(cfg, rule_options={**resolve(cfg.rule).typed(cfg.rule_options), **rule.params()})
    backend.select(analog=not spec.is_exact)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_set, seed=cfg.seed, data_dir=cfg.data_dir, download=cfg.download)
    plan = rule.network_plan(data)
    cfg = replace(cfg, model=cfg.model or plan.default_model, batch_size=cfg.batch_size or data.default_batch_size)
    if plan.model_kinds and cfg.model.split(":")[0].split("@")[0] not in plan.model_kinds:
        raise HiltError(f"rule {cfg.rule} trains {' or '.join(plan.model_kinds)} models (default {plan.default_model}); "
                        f"got --model {cfg.model}")
    new_optimizer = lambda: make_optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay)  # noqa: E731
    try:
        new_optimizer()
    except ValueError as err:
        raise HiltError(str(err)) from None
    factory = crossbar_factory(spec, new_optimizer)
    return cfg, spec, rule, data, plan, factory
