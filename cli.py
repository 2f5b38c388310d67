"""hilt command line: `python cli.py COMMAND` or `hilt COMMAND`.

A thin front: parses, validates, calls experiments/, prints. Exit codes: 0 done; 2 bad input
(HiltError, an unreadable or unwritable path: one line on stderr, no traceback); 3 a run
diverged; 1 a run crashed (its one line on stderr and in summary.json, the traceback in the run
folder's error.log); 128 + N stopped by signal N (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

if __name__ == "__main__":  # `python cli.py` starts as `hilt` does: the signal handlers first (hilt/__main__.py)
    from hilt.__main__ import main

    main()

import copy
import functools
import inspect
import json
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from hilt import api, shutdown
from hilt.errors import HiltError
from hilt.experiments.run.config import COMMAND_DEFAULTS, COMPARE_EVERY, TrainConfig
from hilt.experiments.run.run_folder import RunStatus
from hilt.rules.registry import builtin_options

class _OneLineGroup(typer.core.TyperGroup):
    """Click's usage errors in a command's arguments (`--epochs abc`, an unknown option) are one line
    on stderr and exit 2, like every other user mistake, instead of Typer's usage panel (also when
    the app is called in-process, as the tests do; `main` does the same for the app's own options)."""

    def invoke(self, ctx):
        # Typer vendors click and exports no public name for its usage errors; typer is pinned.
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as err:
            _usage_error(err)
            raise typer.Exit(EXIT_BAD_INPUT)


def _usage_error(err) -> None:
    where = f"`{err.ctx.command_path} --help`" if err.ctx else "`hilt --help`"
    say("error:", "bold red", f"{err.format_message()} (see {where})")


app = typer.Typer(
    cls=_OneLineGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="hilt: local learning rules on emulated analog crossbars (aihwkit) and on an exact path.",
)


@app.callback()
def _every_command() -> None:
    """hilt: local learning rules on emulated analog crossbars (aihwkit) and on an exact path."""
    try:
        api.check_environment()  # HILT_XP, once for every command
    except HiltError as err:
        say("error:", "bold red", str(err))
        raise typer.Exit(EXIT_BAD_INPUT)


def say(label: str, style: str, message: str) -> None:
    """One line on stderr: a styled label, then the message as plain text (user text is never markup;
    line breaks and other control characters in it, a value typed with a newline, are shown escaped)."""
    message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble((label, style), " ", message))


EXIT_CRASHED, EXIT_BAD_INPUT, EXIT_DIVERGED = 1, 2, 3


def user_errors(fn):
    """HiltError, and a path that cannot be read or written (OSError) -> one line on stderr, exit 2
    (no traceback for user mistakes). An interrupt that reaches here came before any run folder was
    made, or after the work was done (a run, a sweep, a comparison reports its own); an error that is
    only an interrupt's echo in a library (see shutdown.interrupted) is reported as the interrupt."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:  # the command's own exit code (an Exception too)
            raise
        except HiltError as err:
            say("error:", "bold red", str(err))
            raise typer.Exit(EXIT_BAD_INPUT)
        except OSError as err:  # a full disk, a folder without permission, a file where a folder should be
            where = err.filename or "a file"
            say("error:", "bold red", f"cannot read or write {where}: {err.strerror or err}")
            raise typer.Exit(EXIT_BAD_INPUT)
        except Exception as err:
            if not shutdown.interrupted(err):
                raise
            stopped()
        except KeyboardInterrupt:
            stopped()

    return wrapper


_stop_told = []  # the interrupt's one line has been printed


def stopped(message: str = "stopped before the command finished; the files it had written are kept whole"):
    """An interrupted command's one line (what was kept), then its exit code (128 + the signal)."""
    say("interrupted:", "bold yellow", message)
    _stop_told.append(message)
    raise typer.Exit(shutdown.exit_code())


def _cell(value) -> Text:
    return Text("-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))


def print_table(title: str, rows: list[tuple], columns: tuple[str, ...] | None = None) -> None:
    """A table of plain-text cells (floats to 4 decimals); without `columns`, no header."""
    table = Table(title=Text(title), show_header=columns is not None)
    names = max([len(str(row[0])) for row in rows] + [len(columns[0]) if columns else 0])
    for k, col in enumerate(columns or ()):  # the first column names things: kept whole; the others wrap
        table.add_column(Text(col), overflow="fold", min_width=min(names, 32) if k == 0 else None)
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    Console().print(table)


def _stderr_progress(*columns, transient: bool = True) -> Progress:
    """A progress bar on stderr, off when stderr is not a terminal (logs get no bar lines)."""
    err = Console(stderr=True)
    return Progress(*columns, console=err, transient=transient, disable=not err.is_terminal)


def _prog() -> str:
    """How the user called hilt, for the commands we suggest."""
    return "python cli.py" if Path(sys.argv[0]).name == "cli.py" else "hilt"


_D = TrainConfig()  # the defaults of a run live in TrainConfig only


def _api_default(function, name: str):
    """A command option's default where the Python API function of the command declares it (one home)."""
    return inspect.signature(function).parameters[name].default


def _choices(names) -> str:
    return " | ".join(names)


def _help_lists() -> dict[str, str]:
    """The choices the run options name, from their registries (one home for each list)."""
    from dataclasses import fields as dataclass_fields

    from hilt.analog.optim import OPTIMIZERS
    from hilt.analog.periphery import ACTIVATIONS
    from hilt.data.registry import EMBEDDED, ON_DISK
    from hilt.data.rhm import RHMParams
    from hilt.devices.device_file import MODELS, NON_ACCUMULATING
    from hilt.devices.updates import DEFAULT_UPDATE, UPDATES

    return {"datasets": f"embedded: {_choices(EMBEDDED)}; from --data-dir: {_choices(ON_DISK)}",
            "rhm_keys": ", ".join(f.name for f in dataclass_fields(RHMParams)),
            "updates": f"{_choices(UPDATES)} (default: {DEFAULT_UPDATE}, or the preset's own)",
            "optimizers": _choices(OPTIMIZERS), "activations": _choices(ACTIVATIONS), "fit_models": _choices(MODELS),
            "non_accumulating": "; ".join(f"{k}: {v}" for k, v in NON_ACCUMULATING.items())}


_H = _help_lists()


def _run_options(
    dataset: str = typer.Option(_D.dataset, help=_H["datasets"]),
    data_set: Optional[List[str]] = typer.Option(None, "--data-set", help=f"dataset option KEY=VALUE (all: augment, views, validation; rhm: {_H['rhm_keys']}; on-disk data: train_size, test_size, norm)"),
    data_dir: Optional[str] = typer.Option(_D.data_dir, help="folder holding the on-disk datasets in their standard layouts (see README)"),
    download: bool = typer.Option(_D.download, "--download", help="fetch a missing on-disk dataset into --data-dir first (torchvision's addresses and MD5 sums)"),
    model: Optional[str] = typer.Option(_D.model, help="mlp:IN-H-...-OUT, cnn:C1-C2, cnn1d:C1-C2 or rhm-cnn:H (optional @WIDTH); default: the dataset's own (self-supervised rules: its encoder, no readout)"),
    device: str = typer.Option(_D.device, help="device preset, NeuroSim device, FILE.json from `hilt devices fit`, or neurosim:KEY=V,... (see `hilt devices`)"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="device parameter KEY=VALUE (see `hilt devices`)"),
    update: Optional[str] = typer.Option(_D.update, help=f"analog update algorithm: {_H['updates']} (see `hilt devices NAME --update ALGO`)"),
    rule: str = typer.Option(_D.rule, help="learning rule: a built-in or installed one (see `hilt rules`), "
                             "path/to/file.py:Class or package.module:Class"),
    rule_opt: Optional[List[str]] = typer.Option(None, "--rule-opt", help="rule option KEY=VALUE, for any rule "
                                                 "(the built-in rules' options also have flags of their own)"),
    log_alignment: bool = typer.Option(_D.log_alignment, "--log-alignment", help="record per-layer cosine with the BP gradient each epoch"),
    epochs: int = typer.Option(_D.epochs, help="training epochs (with --resume: the new total)"),
    batch_size: Optional[int] = typer.Option(_D.batch_size, help="mini-batch size; default: the dataset's own"),
    lr: float = typer.Option(_D.lr, help="learning rate (> 0); the peak of --lr-schedule"),
    lr_schedule: str = typer.Option(_D.lr_schedule, help="constant | warmup-cosine:WARMUP_EPOCHS,DECAY_EPOCHS,INIT_LR,FINAL_LR (per step)"),
    seed: int = typer.Option(_D.seed, help="seeds init, data order, exact path, device-to-device spread (>= 0); not aihwkit's "
                             "read and pulse noise, which it seeds from the clock (analog runs repeat in distribution only)"),
    optimizer: str = typer.Option(_D.optimizer, help=f"exact device only: {_H['optimizers']}"),
    momentum: float = typer.Option(_D.momentum, help="exact device only: SGD momentum"),
    weight_decay: float = typer.Option(_D.weight_decay, help="exact device only: weight decay"),
    activation: str = typer.Option(_D.activation, help=f"hidden activation: {_H['activations']}"),
    keep_best: bool = typer.Option(_D.keep_best, "--keep-best", help="also keep checkpoint-best.npz (best validation accuracy, else test)"),
    tensorboard: bool = typer.Option(_D.tensorboard, "--tensorboard/--no-tensorboard", help="write RUN_DIR/tensorboard/ (losses, accuracies, costs per epoch; settings as hparams): `tensorboard --logdir results/`"),
    eval_every: int = typer.Option(_D.eval_every, help="evaluate on the test set every N epochs (and after the last)"),
    cost: Optional[str] = typer.Option(None, "--cost", help="cost table JSON for the energy/latency estimates (default: experiments/measure/cost_table.json, with sources)"),
    out: str = typer.Option(_D.out, help="where run directories go"),
):
    """The options of a run that are TrainConfig fields (the rule's options are added below)."""


def _rule_option(option, rules: list[str]) -> inspect.Parameter:
    """A Typer option for one option of the built-in rules (declared in the rule classes)."""
    flag = "--" + option.name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if option.kind is bool else [flag]
    return inspect.Parameter(option.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[option.kind],
                             default=typer.Option(None, *decls, help=f"{option.doc} ({', '.join(rules)})"))


_RULE_OPTIONS = [_rule_option(option, rules) for option, rules in builtin_options().values()]


def _rule_opts(items: list[str] | None) -> dict:
    """--rule-opt KEY=VALUE ... -> {key: text} (typed by the rule's declarations when it is made)."""
    from hilt.keyvalue import parse_items

    return parse_items("--rule-opt", items or [], expected="KEY=VALUE, an option of the rule")


def _train_config(**options):
    """The options of a training run (train, compare, ...) -> a TrainConfig."""
    rule_options = {p.name: options.pop(p.name) for p in _RULE_OPTIONS}
    for key, text in _rule_opts(options.pop("rule_opt")).items():
        if rule_options.get(key) is not None:
            raise HiltError(f"--rule-opt {key}: also given as {'--' + key.replace('_', '-')}; give it once")
        rule_options[key] = text
    sets, data_set = options.pop("sets") or [], options.pop("data_set") or []
    cost = options.pop("cost")
    if cost is not None:
        from hilt.experiments.measure.cost import load_cost_table

        options["cost_table"] = load_cost_table(cost)
    return TrainConfig(**options, sets=sets, data_set=data_set, rule_options=rule_options)


_train_config.__signature__ = inspect.Signature(
    list(inspect.signature(_run_options, eval_str=True).parameters.values())
    + _RULE_OPTIONS)


_TRAIN_OPTIONS = inspect.signature(_train_config, eval_str=True).parameters


def _with_default(param: inspect.Parameter, value) -> inspect.Parameter:
    option = copy.copy(param.default)
    option.default = value
    return param.replace(default=option)


def with_train_options(command=None, *, defaults: dict | None = None):
    """Typer sees every option of `_train_config` (with the command's own `defaults`, from
    COMMAND_DEFAULTS, where they differ from a run's), then the command's own options; the command
    gets the former as `cfg`, a TrainConfig (one option list for every command that trains)."""
    if command is None:
        return functools.partial(with_train_options, defaults=defaults)

    @functools.wraps(command)
    def wrapper(**kwargs):
        cfg = _train_config(**{name: kwargs.pop(name) for name in _TRAIN_OPTIONS})
        return command(cfg=cfg, **kwargs)

    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "cfg"]
    context = [p for p in own if p.name == "ctx"]
    options = [_with_default(p, defaults[p.name]) if p.name in (defaults or {}) else p for p in _TRAIN_OPTIONS.values()]
    wrapper.__signature__ = inspect.Signature(context + options + own[len(context):])
    del wrapper.__wrapped__
    return wrapper


# train's parameters that are not settings of the run (every other one is a TrainConfig field or a rule option)
_NOT_SETTINGS = ("cost", "as_json", "resume", "recipe", "ctx", "rule_opt", "allow_rule_change")


def _typed_settings(ctx: typer.Context) -> dict:
    """The settings the user typed on the command line: TrainConfig fields and rule options."""
    given = {name: value for name, value in ctx.params.items()
             if name not in _NOT_SETTINGS and ctx.get_parameter_source(name).name == "COMMANDLINE"}
    if ctx.get_parameter_source("rule_opt").name == "COMMANDLINE":
        given.update(_rule_opts(ctx.params["rule_opt"]))
    if "cost" in ctx.params and ctx.get_parameter_source("cost").name == "COMMANDLINE":
        from hilt.experiments.measure.cost import load_cost_table

        given["cost_table"] = load_cost_table(ctx.params["cost"])  # a resumed run checks it against its own
    return given


def _progress(cfg):
    """A progress bar on stderr (off when stderr is not a terminal) and the train() callbacks for it."""
    # at 80 columns the numbers stay whole: a long description is cut, the status wraps
    progress = _stderr_progress(
        TextColumn("[bold]{task.description}", table_column=Column(max_width=30, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=16), MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=5)),
        TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)),
        TextColumn("{task.fields[status]}", table_column=Column(overflow="fold", ratio=1)))

    def callbacks(description: str) -> dict:
        task = progress.add_task(escape(description), total=cfg.epochs, status="")
        started = time.perf_counter()

        def on_step(epoch, step, steps):
            progress.update(task, completed=epoch - 1 + step / steps)

        def on_epoch(tr, te):
            status = f"loss {tr['loss']:.3f} train {tr['accuracy']:.3f} test {te['accuracy']:.3f}"
            progress.update(task, completed=tr["epoch"], status=status)
            if progress.disable:  # off a terminal (pipes, schedulers, CI logs): one plain line per epoch
                print(f"{description}: epoch {tr['epoch']}/{cfg.epochs} {status} (exact readout "
                      f"{te['accuracy_exact_readout']:.3f}) {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

        return {"on_step": on_step, "on_epoch": on_epoch}

    return progress, callbacks


def _print_costs(columns: dict[str, dict], table: str) -> None:
    """What the crossbars did (counts) and the energy and time it is estimated to take, side by side."""
    from hilt.analog.costs import COUNT_KEYS
    from hilt.experiments.measure.cost import ESTIMATES

    shown = [k for k in COUNT_KEYS if any(c.get(k) for c in columns.values())]
    rows = [(k, *[f"{c.get(k, 0):.4g}" for c in columns.values()]) for k in shown]
    rows += [(f"{k} (estimate)", *[f"{c.get(k, 0):.3g}" for c in columns.values()]) for k in ESTIMATES]
    print_table(f"hardware cost (estimates from the cost table: {table})", rows, columns=("count", *columns))


def _report_end(summary: dict, target_epochs: int, go_on: str | None = None) -> None:
    """A diverged or crashed run prints one line and exits with its code; an interrupted one prints
    the command that continues it (`go_on`, default train --resume RUN) and exits."""
    run_dir = summary["run_dir"]
    if summary["status"] == RunStatus.DIVERGED:
        say("diverged:", "bold red", f"training diverged at {summary['error']}; results so far kept in {run_dir}")
        raise typer.Exit(EXIT_DIVERGED)
    if summary["status"] == RunStatus.CRASHED:
        say("crashed:", "bold red", f"{summary['error']}; results so far kept in {run_dir} (traceback in error.log)")
        raise typer.Exit(EXIT_CRASHED)
    if summary["status"] == RunStatus.INTERRUPTED:
        stopped(f"{summary['epochs']} of {target_epochs} epochs kept in {run_dir}; "
                f"continue with: {_prog()} {go_on or 'train --resume ' + shlex.quote(run_dir)}")


@app.command()
@user_errors
@with_train_options
def train(
    ctx: typer.Context,
    cfg=None,
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run folder (to --epochs N); other settings must match"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="start from a paper's settings (see `recipes`); typed flags override them"),
    allow_rule_change: bool = typer.Option(False, "--allow-rule-change", help="--resume a plug-in rule's run although "
                                           "the rule's source changed since the run started"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as one JSON object on stdout"),
):
    """Train a network with a learning rule on a device; write results/runs/<id>/ (or continue one)."""
    cfg = api.configure(_typed_settings(ctx), base=cfg, resume=resume, recipe=recipe, allow_rule_change=allow_rule_change)
    progress, callbacks = _progress(cfg)
    with progress:
        summary = api.run_config(cfg, resume=resume, **callbacks(f"{cfg.rule_label} on {cfg.device_label}")).summary
    if as_json:
        print(json.dumps(summary))
    _report_end(summary, cfg.epochs)
    if as_json:
        return
    print_table(f"{summary['rule']} on {summary['device']}: {summary['dataset']} {summary['model']}",
                [(key, summary[key]) for key in ("test_accuracy", "test_accuracy_exact_readout", "train_accuracy",
                                                 "train_loss", "epochs", "wall_time_s")])
    _print_costs({"training": summary["costs"]["train"], "evaluation": summary["costs"]["eval"]}, summary["costs"]["table"])
    print(f"run folder: {summary['run_dir']}")


@app.command()
@user_errors
@with_train_options
def compare(
    ctx: typer.Context,
    cfg=None,
    every: Optional[int] = typer.Option(None, help=f"sample update fidelity every N training steps (default {COMPARE_EVERY}; "
                                         "a resumed comparison keeps its own)"),
    resume: Optional[str] = typer.Option(None, "--resume", help="finish this interrupted comparison folder (to --epochs N); other settings must match"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison's summary as one JSON object on stdout"),
):
    """Train the same rule on the exact path and on a device (same init, same data order); compare
    accuracy, alignment with BP and update fidelity per epoch. Writes a folder with both runs,
    compare.csv, fidelity.csv and compare.png; `--resume DIR` finishes an interrupted one."""
    if resume is not None:
        cfg, every = api.reopen_comparison(resume, {**_typed_settings(ctx), "every": every})
    progress, callbacks = _progress(cfg)
    with progress:
        result = api.compare_config(cfg, every=COMPARE_EVERY if every is None else every, resume=resume,
                                    on_run=lambda path: callbacks(f"{cfg.rule_label} on {path}")).summary
    if as_json:
        print(json.dumps(result, default=str))
    if "stopped" in result:
        _report_end(result["stopped"], cfg.epochs, f"compare --resume {shlex.quote(result['run_dir'])}")
    if as_json:
        return
    label = result["device"]
    print_table(f"{cfg.rule_label}: exact vs {label}, {cfg.dataset}, last epoch",
                [(r["metric"], r["layer"], r.get("exact"), r.get(label)) for r in result["final"]],
                columns=("metric", "layer", "exact", label))
    _print_costs({f"training, {path}": costs for path, costs in result["costs"].items()}, result["cost_table"])
    print(f"comparison folder: {result['run_dir']}")


@app.command()
@user_errors
@with_train_options(defaults=COMMAND_DEFAULTS["sweep"])
def sweep(
    cfg=None,
    grid: Optional[List[str]] = typer.Option(None, "--grid", help="KEY=V1,V2,...: a --set device key, a rule option, a train option or an rhm --data-set key (repeat for more axes); values with commas in them: KEY=V1;V2"),
    seeds: int = typer.Option(_api_default(api.sweep, "seeds"), help="seeds per point: --seed, --seed+1, ..."),
    jobs: int = typer.Option(_api_default(api.sweep, "jobs"), help="points run in parallel with Ray on this machine (1: serial, no Ray)"),
    ray_address: Optional[str] = typer.Option(None, help="send points to this existing Ray cluster (e.g. auto, ray://host:10001)"),
    name: Optional[str] = typer.Option(None, help="sweep folder name (a plain name); default: derived from the settings, grid and seeds"),
    force_new: bool = typer.Option(False, "--force-new", help="the --name folder holds a sweep of other settings: move it aside (NAME.replaced-TIME) and start over"),
    as_json: bool = typer.Option(False, "--json", help="print the sweep's rows as JSON on stdout"),
):
    """Train every point of a grid (times seeds), each in its own run folder; resumable: rerunning the
    same command skips finished points and resumes killed ones. Writes sweep.csv/.parquet and plots
    under --out/<name>/."""
    from rich.progress import TimeRemainingColumn

    from collections import Counter

    from hilt.experiments.studies.report import markdown, summarize

    plan = api.plan_sweep(cfg, grid or [], seeds, name)
    progress = _stderr_progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), transient=False)
    with progress:
        task = progress.add_task("sweep", total=len(plan.points))
        try:
            rows = api.run_sweep(plan, jobs=jobs, ray_address=ray_address, force_new=force_new,
                                 on_point=lambda point, summary: progress.advance(task))
        except KeyboardInterrupt:
            rows = None
    if rows is None:
        stopped(f"finished points are kept in {plan.root}; rerun the same command to go on "
                f"(`{_prog()} sweep ... --name {plan.root.name}` finds it too)")
    if as_json:
        print(json.dumps(rows))
        return
    finished = [r for r in rows if r["status"] == RunStatus.FINISHED]
    if finished:
        import pandas as pd

        table, _ = summarize(pd.DataFrame(finished), list(plan.grid), ["test_accuracy", "test_accuracy_exact_readout", "train_energy_j"])
        print(markdown(table), end="")
    others = Counter(r["status"] for r in rows if r["status"] != RunStatus.FINISHED)
    left_out = "".join(f", {n} {status}" for status, n in sorted(others.items()))
    print(f"sweep folder: {plan.root} ({len(finished)} of {len(plan.points)} points finished{left_out})")


@app.command("rhm-pstar")
@user_errors
@with_train_options(defaults=COMMAND_DEFAULTS["rhm-pstar"])
def rhm_pstar(
    cfg=None,
    rules: str = typer.Option("clapp_pp,bp,dfa", help="comma-separated rules to compare"),
    p_min: int = typer.Option(32, help="smallest training-set size P"),
    p_max: int = typer.Option(2048, help="largest training-set size P"),
    per_decade: int = typer.Option(4, help="grid points per factor of 10 in P"),
    seeds: int = typer.Option(3, help="seeds per point: --seed, --seed+1, ... (init, data draw)"),
    jobs: int = typer.Option(_api_default(api.sweep, "jobs"), help="points run in parallel with Ray on this machine (1: serial, no Ray)"),
    ray_address: Optional[str] = typer.Option(None, help="send points to this existing Ray cluster"),
    name: Optional[str] = typer.Option(None, help="study folder name; default: derived from the settings"),
    as_json: bool = typer.Option(False, "--json", help="print {errors, pstar} as JSON on stdout"),
):
    """Sample complexity on the RHM: test error against training-set size P per rule (linear probe of
    the last layer for self-supervised rules, the output for supervised ones) and P*, the smallest P
    with error <= 10 % of chance. Writes --out/<name>/ (runs, errors.csv, pstar.csv,
    pstar.png); rerunning the same command resumes it."""
    from hilt.experiments.studies import rhm_study
    from hilt.experiments.studies import sweep as sweeps

    sizes = rhm_study.geometric_sizes(p_min, p_max, per_decade)
    study = rhm_study.plan(cfg, [r.strip() for r in rules.split(",") if r.strip()], sizes, seeds, Path(cfg.out), name)
    progress = _stderr_progress(TextColumn("[bold]rhm-pstar"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                transient=False)
    with progress:
        task = progress.add_task("rhm-pstar", total=len(study.points))
        try:
            rows = sweeps.run(study, jobs=jobs, ray_address=ray_address, on_point=lambda p, s: progress.advance(task))
        except KeyboardInterrupt:
            stopped(f"finished points are kept in {study.root}; rerun the same command to go on")
    errors, pstar = rhm_study.analyse(study, rows)
    if as_json:
        print(json.dumps({"errors": errors, "pstar": pstar, "study_dir": str(study.root)}))
        return
    print_table("P*: smallest P with test error <= 10 % of chance",
                [(r["rule"], None if r["p_star"] is None else round(r["p_star"]), r["min_error"], r["n_c_m_L"]) for r in pstar],
                columns=("rule", "P*", "lowest error", "n_c m^L"))
    print(f"study folder: {study.root}")


@app.command()
@user_errors
def align(
    check: str = typer.Option(..., "--check", help="thm31 (Theorem 3.1 and its ablations) | thm33 (Theorem 3.3, standard vs DFB) | "
                              "relu-mlp (trained ReLU MLP, Fig. 3B) | linear-cnn (linear CNN, spatial vs global, Fig. 4B)"),
    batches: int = typer.Option(32, help="batches of 32 digit-crop pairs (relu-mlp: test batches, at most 11)"),
    width: Optional[int] = typer.Option(None, help="layer width (thm31 128, relu-mlp 512: all layers; thm33: the first, "
                                                   "halving after; linear-cnn: channels, 32)"),
    epochs: int = typer.Option(20, help="relu-mlp: training epochs"),
    seed: int = typer.Option(0, help="seeds crops and weights"),
    as_json: bool = typer.Option(False, "--json", help='print {"check": ..., "layers": [{"layer": k, "cos": ...}, ...]}'),
):
    """Linear-network theory of local contrastive learning (Wu et al. 2026, §3): per-layer cosine of the local
    update with BP-SSL at the optimal B* (Newton in the span of the data, or closed form for linear f)."""
    from hilt.experiments.studies.theory import run_check

    result = run_check(check, batches=batches, seed=seed, width=width, epochs=epochs)
    if as_json:
        print(json.dumps(result))
        return
    columns = [k for k in result["layers"][0] if k != "layer"]
    print_table(f"{check}: per-layer cosine(local, BP-SSL), mean over {batches} batches",
                [(r["layer"], *[r[c] for c in columns]) for r in result["layers"]], columns=("layer", *columns))


class _DevicesGroup(_OneLineGroup):
    """`hilt devices NAME ...` is `hilt devices show NAME ...`: a device name is not a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


devices_app = typer.Typer(cls=_DevicesGroup, invoke_without_command=True, add_completion=False,
                          help="Device presets, NeuroSim devices, update algorithms and --set keys; "
                               "`devices NAME` shows one, `devices fit DATA.csv` makes a device from measurements.")
app.add_typer(devices_app, name="devices")


@devices_app.callback()
@user_errors
def devices(ctx: typer.Context):
    """List device presets, NeuroSim devices, update algorithms and the --set keys with their ranges."""
    if ctx.invoked_subcommand is not None:
        return
    from hilt.devices.neurosim import HELP as NEUROSIM_HELP, NEUROSIM_DEVICES
    from hilt.devices.presets import PARAMS, PRESETS, parse_device
    from hilt.devices.updates import UPDATES

    console = Console()
    table = Table(title="devices (--device): presets, NeuroSim devices; also FILE.json and neurosim:KEY=V,...")
    for col in ("name", "description", "dw_min", "w_max", "forward IO", "update_bl"):
        table.add_column(col, no_wrap=col == "name", min_width=14 if col == "name" else None)
    for name, description in [*((p, d) for p, (_, d) in PRESETS.items()), *((n, d) for n, (_, d) in NEUROSIM_DEVICES.items())]:
        d = parse_device(name).describe()
        io = d.get("forward_io", "-")
        io = io if isinstance(io, str) else f"{io['dac_bits']}b DAC, {io['adc_bits']}b ADC, noise {io['read_noise']}"
        dw_min = d.get("dw_min", "-")
        table.add_row(name, Text(description), f"{dw_min:.4g}" if isinstance(dw_min, float) else str(dw_min),
                      str(d.get("w_max", "-")), io, str(d.get("update_bl", "-")))
    console.print(table)
    console.print(Text(NEUROSIM_HELP))
    algorithms = Table(title="update algorithms (--update), for every pulsed device")
    for col in ("name", "meaning"):
        algorithms.add_column(col)
    for algorithm, info in UPDATES.items():
        algorithms.add_row(algorithm, info.doc)
    console.print(algorithms)
    keys = Table(title="device parameters (--set KEY=VALUE)")
    for col in ("key", "range", "meaning", "--update"):  # a key is typed as shown: never cut
        keys.add_column(col, no_wrap=col == "key", min_width=max(len(k) for k in PARAMS) if col == "key" else None)
    for p in PARAMS.values():
        keys.add_row(p.name, f"{p.kind.__name__} [{p.lo:g}, {p.hi:g}]", p.doc, ", ".join(p.updates) or "any")
    console.print(keys)


@devices_app.command("show")
@user_errors
def devices_show(
    name: Optional[str] = typer.Argument(None, help="a preset, a NeuroSim device, FILE.json or neurosim:KEY=V,..."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="apply overrides KEY=VALUE first"),
    update: Optional[str] = typer.Option(None, help="with an update algorithm (and its parameters)"),
):
    """One device's effective parameters (after --set and --update), as JSON."""
    from hilt.devices.presets import parse_device

    if not name:
        raise HiltError("devices --set/--update needs a device name, e.g. `hilt devices rram --update mp --set transfer_every=2`")
    Console().print_json(json.dumps(parse_device(name, sets or [], update=update).describe(), default=str))


@devices_app.command("plot")
@user_errors
def devices_plot(
    names: List[str] = typer.Argument(..., help="presets, NeuroSim devices, FILE.json or neurosim:KEY=V,... side by side"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="overrides KEY=VALUE for every device"),
    update: Optional[str] = typer.Option(None, help=f"show the compound's effective weight under this update algorithm: {_H['updates']}"),
    cycles: int = typer.Option(2, help="cycles of up then down pulses"),
    pulses: Optional[int] = typer.Option(None, help="pulses per direction (default: aihwkit's estimate across the range)"),
    out: Path = typer.Option(Path("devices.png"), help="the figure (.png, .pdf or .svg)"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
):
    """The pulse response (cycles up and down, several devices each, with their noise) and the step
    per pulse against the weight, up and down, of each device, side by side in one figure."""
    from hilt.devices.response import plot_responses, pulse_response

    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise HiltError(f"--out {out}: a figure ends in .png, .pdf or .svg")
    if out.exists() and not force:
        raise HiltError(f"--out {out} exists; choose another --out or pass --force to overwrite it")
    responses = [pulse_response(name, sets, update, cycles, pulses) for name in names]
    plot_responses(responses, out)
    for r in responses:
        up, down = r.median_step(1), r.median_step(-1)
        print(f"{r.label}: {len(r.direction) - 1} pulses x {r.weights.shape[1]} devices; weight "
              f"{r.weights.min():.3g}..{r.weights.max():.3g}; median step up {up:.3g}, down {down:.3g}")
    print(f"figure: {out}")


@devices_app.command("fit")
@user_errors
def devices_fit(
    data: Path = typer.Argument(..., help="CSV: pulse (+1, -1 or a signed count), conductance; optional trace, device"),
    model: str = typer.Option(_api_default(api.fit_device, "model"), help=_H["fit_models"]),
    out: Optional[Path] = typer.Option(None, help="device file to write (default: DATA-MODEL.json beside DATA); "
                                                  "its plot goes beside it as .png"),
    g_min: Optional[float] = typer.Option(None, help="conductance that maps to --w-min (default: the data's minimum)"),
    g_max: Optional[float] = typer.Option(None, help="conductance that maps to --w-max (default: the data's maximum)"),
    w_min: float = typer.Option(_api_default(api.fit_device, "w_min"), help="weight of g_min"),
    w_max: float = typer.Option(_api_default(api.fit_device, "w_max"), help="weight of g_max"),
    non_accumulating: str = typer.Option(_api_default(api.fit_device, "non_accumulating"),
                                         help=f"where the reads' scatter that does not accumulate goes: {_H['non_accumulating']}"),
    compare_presets: bool = typer.Option(False, "--compare-presets", help="also rank the presets by their error on the data"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
    as_json: bool = typer.Option(False, "--json", help="print the device file's content as JSON"),
):
    """Fit an aihwkit device model to measured pulse-response data (lmfit): writes a device file for
    `--device FILE.json`, a plot of measured vs fitted response, and prints the parameters."""
    from hilt.devices.device_file import MODELS

    if model not in MODELS:
        raise HiltError(f"--model {model}: unknown model; allowed: {', '.join(MODELS)}")
    out = out or data.with_name(f"{data.stem}-{model}.json")
    if out.suffix != ".json":
        raise HiltError(f"--out {out}: a device file ends in .json")
    for path in (out, out.with_suffix(".png")):
        if path.exists() and not force:
            raise HiltError(f"--out {out}: {path} exists; choose another --out or pass --force to overwrite it")
    device = api.fit_device(data, model, g_min, g_max, w_min, w_max, name=out.stem, compare_presets=compare_presets,
                            plot=out.with_suffix(".png"), non_accumulating=non_accumulating)
    device.save(out, force=True)
    record, result, meas, errors = device.definition, device.fit.result, device.fit.measurements, device.fit.preset_rmse
    if as_json:
        print(json.dumps(record))
        return
    span = w_max - w_min
    rows = [(k, v if isinstance(v, float) else f"{len(v)} nodes, {min(v):.3g}..{max(v):.3g}" if isinstance(v, list) else v,
             result.stderr.get(k)) for k, v in result.params.items()]
    rows.append(("states ((w_max - w_min) / dw_min)", round(result.states, 1), None))
    print_table(f"{MODELS[model]} fitted to {data.name}: {meas.rows} reads, {len(meas.traces)} traces, "
                f"{len(meas.devices)} devices, {result.seconds:.1f} s",
                rows, columns=("parameter", "value", "fit error (1 sigma)"))
    print(f"fit RMSE {result.rmse:.4g} weight units = {result.rmse / span:.2%} of the range "
          f"[{w_min:g}, {w_max:g}] <- conductance [{meas.g_range[0]:.4g}, {meas.g_range[1]:.4g}]")
    noise = record["fit"]["noise"]
    ci = lambda v: "" if v is None else f" (95 % {v[0]:.3g}-{v[1]:.3g})"  # noqa: E731
    acc, na = noise["accumulating"], noise["non_accumulating"]
    print(f"noise: accumulating dw_min_std {acc['dw_min_std']:.3g}{ci(acc['ci95'])} -> dw_min_std; "
          f"not accumulating {na['sigma_weight_units']:.3g} weight units{ci(na['ci95'])}, "
          f"correlation {noise['rho']:.2f} per pulse -> {na['to']}")
    if errors:
        print_table("presets on the same data (as they are, noise off), best first",
                    [(name, rmse, rmse / span) for name, rmse in errors], columns=("preset", "RMSE", "of range"))
    print(f"device file: {out}  (use it: --device {out}); plot: {out.with_suffix('.png')}")


@app.command()
@user_errors
def bench(
    device: str = typer.Option("rram", help="analog device preset for the analog comparison"),
    model: str = typer.Option("mlp:64-256-10", help="MLP for both comparisons"),
    large_model: str = typer.Option("mlp:784-1024-1024-10", help="a second, compute-bound MLP for the exact path"),
    batch_size: int = typer.Option(20, help="batch for --model"),
    large_batch_size: int = typer.Option(100, help="batch for --large-model"),
    steps: int = typer.Option(200, help="timed steps per case"),
    lr: float = typer.Option(0.05, help="learning rate of the timed steps"),
    vgg: Optional[str] = typer.Option(None, help="only the conv bench: this image model (e.g. vgg16@0.25) on the exact path vs torch"),
    image_size: int = typer.Option(32, help="--vgg: image side (3 channels)"),
    rule: str = typer.Option("bp", help="--vgg: the rule whose step is timed"),
    pool: Optional[str] = typer.Option(None, help="--vgg with clapp rules: feature pooling per layer"),
    passes: Optional[int] = typer.Option(None, help="--vgg with dp/dp_adjoint: passes K of the schedule"),
    schedule: Optional[str] = typer.Option(None, help="--vgg with dp/dp_adjoint: fwbw | fw"),
    as_json: bool = typer.Option(False, "--json", help="print results as JSON"),
):
    """Time per training step: hilt vs aihwkit-native (analog), and on the exact path vs bare NumPy
    matmuls and vs a flat NumPy program of the same step; with --vgg, an exact-path conv net vs the
    same network in torch."""
    from hilt.devices import parse_device
    from hilt.experiments.reference.timing import (bench_analog, bench_conv, bench_exact, bench_flat, bench_rule_vs_bp,
                                                   check_options, isolated)

    if vgg:
        check_options(steps=steps, lr=lr, models={}, batch_size=batch_size, image_size=image_size)
        results = isolated([(bench_conv, (vgg, image_size, 10, batch_size, steps, lr),
                             dict(rule_name=rule, passes=passes, schedule=schedule, pool=pool))])
    else:
        check_options(steps=steps, lr=lr, models={"model": model, "large_model": large_model},
                      batch_size=batch_size, large_batch_size=large_batch_size)
        parse_device(device)
        if device == "exact":
            raise HiltError("bench --device takes an analog preset (the exact path is always benchmarked)")
        results = isolated([
            (bench_analog, (model, device, batch_size, steps, lr), {}),
            (bench_exact, (model, batch_size, steps, lr), {}),
            (bench_exact, (large_model, large_batch_size, max(20, steps // 4), lr), {}),
            (bench_flat, (model, batch_size, steps, lr), {}),
            (bench_flat, (large_model, large_batch_size, max(20, steps // 4), lr), {}),
            (bench_rule_vs_bp, ("dp_adjoint", model, "exact", batch_size, steps, lr), {}),
            (bench_rule_vs_bp, ("dp_adjoint", model, device, batch_size, steps, lr), {}),
            (bench_rule_vs_bp, ("dp_adjoint", large_model, "exact", large_batch_size, max(20, steps // 4), lr), {}),
            *[(bench_rule_vs_bp, (rule, model, where, batch_size, max(1, steps // 4) if rule == "ep" else steps, lr), {})
              for rule in ("ep", "ff") for where in ("exact", device)],
        ])
    if as_json:
        print(json.dumps([{**r.__dict__, "ratio": r.ratio} for r in results]))
        return
    if vgg:
        r = results[0]
        print_table(r.name, [("hilt ms/step", r.hilt_ms), (f"{r.reference} ms/step", r.reference_ms),
                             ("ratio", r.ratio), *r.extra.items()])
        return
    table = Table(title="step time (median ms)")
    for col in ("case", "hilt", "reference", "ratio", "reference is"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, f"{r.hilt_ms:.3f}", f"{r.reference_ms:.3f}", f"{r.ratio:.2f}", r.reference)
    Console().print(table)


@app.command()
@user_errors
def robustness(
    run_dir: str = typer.Argument(..., help="a finished run folder"),
    draws: int = typer.Option(_api_default(api.robustness, "draws"), help="noise draws per point"),
    as_json: bool = typer.Option(False, "--json", help="print the rows (family, value, draw, accuracy) as JSON"),
):
    """Test accuracy of a finished run on aihwkit inference tiles: programming noise, drift (1 s to
    1 year, compensated or not), read noise, DAC/ADC bits, stuck devices. Writes RUN_DIR/robustness/."""
    from hilt.experiments.studies.robustness import CONDITIONS, summary_table

    progress = _stderr_progress(TextColumn("[bold]robustness"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with progress:
        task = progress.add_task("robustness", total=len(CONDITIONS) * draws)
        rows = api.robustness(run_dir, draws, on_point=lambda: progress.advance(task)).to_dict("records")
    if as_json:
        print(json.dumps(rows))
        return
    print_table(f"test accuracy under inference non-idealities, {draws} draws each",
                [(r["family"], r["value"], f"{r['mean']:.4f} ± {r['std']:.4f}") for r in summary_table(rows)],
                columns=("family", "value", "mean ± std"))
    print(f"files: {Path(run_dir) / 'robustness'} (a call never replaces an earlier one's: robustness-2.csv, ...)")


@app.command()
@user_errors
def report(
    paths: List[str] = typer.Argument(..., help="run folders, or folders holding them (searched recursively)"),
    group_by: Optional[str] = typer.Option(None, help="comma-separated columns to group by; default: dataset, device, rule and every setting that differs between the runs"),
    metric: Optional[List[str]] = typer.Option(None, help="metric column(s); default: test_accuracy, test_accuracy_exact_readout, train_energy_j "
                                                          "(also: train_latency_s, train_expected_pulses, train_reads, wall_time_s, ...)"),
    energy_to: Optional[float] = typer.Option(None, help="add the estimated training energy until the test accuracy first reached this (e.g. 0.9)"),
    plot: Optional[str] = typer.Option(None, help="also plot test accuracy against cumulative training energy per group to this PNG"),
    out: Optional[str] = typer.Option(None, help="also write the Markdown table to this file"),
    force: bool = typer.Option(False, "--force", help="overwrite --out / --plot if they exist"),
):
    """Markdown table of finished runs: n and mean ± std over seeds per group (every setting that
    differs, unless --group-by says otherwise); says what it leaves out or pools."""
    from hilt.experiments.run.files import write_text

    if out is not None and not out.strip():
        raise HiltError("report --out '': give a file name for the Markdown table")
    for flag_name, path in (("--out", out), ("--plot", plot)):
        if path and Path(path).exists() and not force:
            raise HiltError(f"report {flag_name} {path} exists; choose another file or pass --force to overwrite it")
    result = api.report(paths, group_by=group_by, metrics=metric, energy_to=energy_to, plot=plot)
    if out:
        write_text(Path(out), result.markdown)
    print(result.markdown, end="")
    for line in result.notes:
        say("note:", "bold yellow", line)


@app.command()
@user_errors
def recipes(name: Optional[str] = typer.Argument(None, help="show this recipe's settings")):
    """List the papers' training recipes (`train --recipe NAME`), or one recipe's settings."""
    from hilt.experiments.run.recipes import recipe, recipes as all_recipes

    if name is None:
        print_table("recipes (train --recipe NAME; typed flags override)",
                    [(n, r["description"]) for n, r in all_recipes().items()], ("name", "description"))
        return
    entry = recipe(name)
    print_table(f"{name}: {entry['description']}", [(k, str(v)) for k, v in entry.items() if k != "description"],
                ("setting", "value"))


@app.command()
@user_errors
def rules(spec: Optional[str] = typer.Argument(None, help="show this rule's options: a name, FILE.py:Class or module:Class")):
    """List the learning rules (built-in and installed plug-ins) with where each comes from and its
    options, or one rule's options with their types and docs."""
    if spec is None:
        table = Table(title="learning rules (--rule NAME, or --rule path/to/file.py:Class, --rule package.module:Class)")
        for col in ("name", "source", "description", "options (default)"):
            table.add_column(col)
        for row in api.list_rules().itertuples():
            table.add_row(row.name, row.source, Text(row.description), row.options)
        Console().print(table)
        return
    from hilt.rules import resolve

    info = resolve(spec)
    print_table(f"rule {spec} ({info.source}): {info.description}",
                [(o.name, o.kind.__name__, str(o.default), o.doc) for o in info.options.values()],
                columns=("option", "type", "default", "meaning"))


def _quiet_libraries() -> None:
    """Nothing on stderr but hilt's own lines: Python warnings (numpy's RuntimeWarnings, pandas',
    torch's) are not shown unless asked for with -W or PYTHONWARNINGS, and matplotlib's font
    notices are not logged. What the numbers mean is checked by hilt itself (not finite: a
    divergence, a refused value)."""
    import logging
    import warnings

    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    logging.getLogger("matplotlib").setLevel(logging.ERROR)


def main() -> None:
    """Entry point. Click's own usage errors (`--epochs abc`, an unknown option) become one line
    on stderr and exit 2, like every other user mistake, instead of Typer's usage panel."""
    # Typer vendors click and exports no public name for its usage errors; typer is pinned.
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    _quiet_libraries()  # the signal handlers are installed already (hilt/__main__.py)
    try:
        code = typer.main.get_command(app).main(prog_name="hilt", standalone_mode=False)
    except NoArgsIsHelpError as err:
        err.show()
        code = 0
    except UsageError as err:  # the app's own options (`hilt --bogus`)
        _usage_error(err)
        code = EXIT_BAD_INPUT
    if shutdown.received() and not _stop_told:  # Typer turns an interrupt while it parses into exit 130, silently
        try:
            stopped()
        except typer.Exit as stop:
            code = stop.exit_code
    sys.exit(code if isinstance(code, int) else 0)

