"""Sweeps: a grid over device keys, rule options, train options and dataset options, times seeds.

One point (grid values + seed) is one ordinary run folder, `<sweep>/points/<key=value,...,seed=S>/`,
so a sweep is resumable: rerunning the same command skips finished points and resumes killed
ones from their checkpoints. The sweep folder's name comes from the base settings, the grid and
the seeds, so the same command finds the same folder. sweep.json records those settings and their
hash: a folder refuses a sweep of other settings (another --name, or `force_new` to move the old
folder aside and start over), and one process at a time runs a sweep folder (files.one_writer).

Points run one after the other, or in parallel as Ray tasks (`jobs` > 1 on this machine, or an
existing cluster at `ray_address`). aihwkit tiles are built inside the task: tiles made before a
fork share their noise state (measured with aihwkit 1.1). On a cluster, every node needs hilt installed
with the same pins, and the sweep folder must be on storage all nodes see.

Output: sweep.csv and sweep.parquet (one row per point and seed, every swept value a column),
acc_vs_<key>.png per swept key (mean ± std over seeds), and heatmap.png for 2-D grids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

from hilt.data.registry import load_dataset
from hilt.data.rhm import RHMParams
from hilt.devices import PARAMS, HiltError
from hilt.devices.device_file import is_device_file
from hilt.experiments.studies import report
from hilt.experiments.run.run_folder import RunFolder, RunStatus
from hilt.keyvalue import merged, parse_items
from hilt.experiments.run.files import WRITER, check_plain_name, one_writer, read_json, write_csv, write_json
from hilt.experiments.run.config import COMMAND_DEFAULTS, flag
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build, check_fits, validate
from hilt.experiments.run.resume import open_run
from hilt.experiments.run.trainer import train
from hilt.rules import resolve
from hilt.rules.registry import builtin_options

# --data-set options: rhm's (whole numbers), the on-disk datasets' norm, and augment / views for all
DATA_KEYS = {**{f.name: int for f in fields(RHMParams)}, "norm": str, "augment": str, "views": str}
TRAIN_KEYS = ("lr", "lr_schedule", "batch_size", "epochs", "model", "device", "update", "rule", "activation", "optimizer",
              "momentum", "weight_decay")
METRICS = (*report.METRICS, "epochs")
SWEEP_RECORD = "sweep.json"  # the sweep folder's settings and their hash


def rule_keys(rules: list[str]) -> dict:
    """Option name -> its declaration (rules.Option), over the built-in rules and the plug-ins `rules`."""
    keys = {name: option for name, (option, _) in builtin_options().items()}
    for spec in rules:
        keys = {**resolve(spec).options, **keys}
    return keys


def parse_grid(items: list[str], base_rule: str = "bp") -> dict[str, list[str]]:
    """['dw_min=1e-4,1e-3', 'alpha=0,0.5'] -> {'dw_min': ['1e-4', '1e-3'], 'alpha': ['0', '0.5']}.
    Values that hold commas are separated by ';' instead ('device=neurosim:nl_ltp=1,c2c=0;rram').
    Rule options are those of the built-in rules, of `base_rule` and of the grid's rules."""
    grid: dict[str, list[str]] = {}
    items = parse_items("--grid", items, expected="KEY=V1,V2,...")
    rules = [base_rule, *[v.strip() for v in items.get("rule", "").split(",") if v.strip()]]
    allowed = [*PARAMS, *rule_keys(rules), *TRAIN_KEYS, *DATA_KEYS]
    for key, text in items.items():
        separator = ";" if ";" in text else ","  # values with commas in them: V1;V2 (neurosim:a=1,b=2;rram)
        values = [v.strip() for v in text.split(separator) if v.strip()]
        if not values:
            raise HiltError(f"--grid {key + '=' + text!r}: expected KEY=V1,V2,...")
        if key not in allowed:
            raise HiltError(f"--grid: unknown key {key!r}; allowed: {', '.join(allowed)}")
        if len(set(values)) != len(values):
            raise HiltError(f"--grid {key}: a value is listed twice")
        grid[key] = values
    if not grid:
        raise HiltError("sweep needs at least one --grid KEY=V1,V2,...")
    return grid


@dataclass(frozen=True)
class Point:
    values: tuple[tuple[str, str], ...]  # (key, value as typed), in grid order
    seed: int

    @property
    def name(self) -> str:
        """The point's folder name: a short readable label of its values (a file by its stem, other
        characters dropped, each value cut to LABEL_CHARS), a hash of the values as typed (two
        values that read alike, such as a/dev.json and a_dev.json, stay apart) and the seed."""
        label = ",".join(f"{k}={_label(v)}" for k, v in self.values)
        digest = hashlib.sha1(json.dumps(self.values).encode()).hexdigest()[:8]
        return f"{label}-{digest},seed={self.seed}"

    @property
    def legacy_name(self) -> str:
        """The folder name sweeps used before the hash (values with / as _): found again on resume."""
        return ",".join(f"{k}={v}" for k, v in self.values).replace("/", "_") + f",seed={self.seed}"


LABEL_CHARS = 24


def _label(value: str) -> str:
    """A grid value as a piece of a folder name: a path by its file's stem, then only letters,
    digits and . _ + @ -, at most LABEL_CHARS."""
    if "/" in value or "\\" in value or value.endswith(".json") or value.endswith(".py"):
        value = Path(value.replace("\\", "/").split(":")[0]).stem or "file"
    return re.sub(r"[^A-Za-z0-9._+@-]", "", value)[:LABEL_CHARS] or "value"


def _typed(key: str, text: str, rules: dict):
    """A grid value as the type of its key (`rules`: the sweep's rule options, from rule_keys)."""
    if key in rules and key not in PARAMS and key not in DATA_KEYS:
        return rules[key].parse(text, "--grid")
    kind = (PARAMS[key].kind if key in PARAMS else DATA_KEYS[key] if key in DATA_KEYS
            else {f.name: f.type for f in fields(TrainConfig)}.get(key))
    if kind in (bool, "bool"):
        if text.lower() not in ("true", "false"):
            raise HiltError(f"--grid {key}={text}: expected true or false")
        return text.lower() == "true"
    try:
        if kind in (float, "float"):
            return float(text)
        if kind in (int, "int", "int | None"):
            return int(text)
    except ValueError:
        raise HiltError(f"--grid {key}={text}: expected a number") from None
    return text


def point_config(base: TrainConfig, point: Point) -> TrainConfig:
    """The TrainConfig of one grid point: the base settings with the point's values and seed."""
    sets, data_set, rule_options, changes = list(base.sets), list(base.data_set), dict(base.rule_options), {}
    rules = rule_keys([base.rule, dict(point.values).get("rule", base.rule)])
    for key, text in point.values:
        if key in PARAMS:
            sets = merged(sets, [f"{key}={text}"])
        elif key in DATA_KEYS:
            data_set = merged(data_set, [f"{key}={text}"])
        elif key in rules:
            rule_options[key] = _typed(key, text, rules)
        else:
            changes[key] = _typed(key, text, rules)
    if "device" in changes:  # another device: the base's recorded definition is not its
        changes["device_definition"] = None
    return replace(base, sets=sets, data_set=data_set, rule_options=rule_options, seed=point.seed, **changes)


def run_point(cfg: dict, run_dir: str) -> dict:
    """One point in its folder: skipped when finished, resumed from its checkpoint when killed (or
    only closed, when it was killed in its final evaluation)."""
    folder = RunFolder(run_dir)
    summary = folder.summary()
    if summary.get("status") in (RunStatus.FINISHED, RunStatus.DIVERGED):
        return summary
    setup = build(TrainConfig(**cfg))
    resume = folder.path if folder.has_checkpoint() else None
    return train(setup, run=open_run(setup, resume, run_dir=folder.path))


@dataclass
class Sweep:
    base: TrainConfig
    grid: dict[str, list[str]]
    seeds: list[int]
    root: Path

    @property
    def settings(self) -> dict:
        """What the sweep's points are made from (not where they are written), with the SHA-256 of
        every plug-in rule's source (an edited rule is another sweep)."""
        code = {spec: info.sha256() for spec in [self.base.rule, *self.grid.get("rule", [])]
                if not (info := resolve(spec)).builtin}
        devices = {name: _file_sha256(name) for name in [self.base.device, *self.grid.get("device", [])]
                   if is_device_file(name)}
        return {"base": asdict(replace(self.base, out="")), "grid": self.grid, "seeds": self.seeds,
                **({"rule_code": code} if code else {}), **({"device_files": devices} if devices else {})}

    @property
    def settings_hash(self) -> str:
        """SHA-1 of the settings: the sweep's identity."""
        return hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()

    @property
    def rule_keys(self) -> dict:
        """The rule options the grid may name (rule_keys of its rules)."""
        return rule_keys([self.base.rule, *self.grid.get("rule", [])])

    @property
    def points(self) -> list[Point]:
        """Every point (values, seed), in grid order."""
        combos = itertools.product(*[[(k, v) for v in values] for k, values in self.grid.items()])
        return [Point(tuple(combo), seed) for combo in combos for seed in self.seeds]

    def folder(self, point: Point) -> Path:
        """The run folder of a point (a folder of the older naming, when this sweep has one)."""
        legacy = self.root / "points" / point.legacy_name
        try:
            if len(point.legacy_name) <= 200 and legacy.is_dir():
                return legacy
        except OSError:
            pass
        return self.root / "points" / point.name


def _file_sha256(path: str) -> str | None:
    """SHA-256 of a device file's content (an edited file is another sweep); None if unreadable."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _as_typed(message: str, point: Point) -> str:
    """A settings error of one grid point, in the words of the command line that made it: the
    flag a grid key stands for (--set KEY, --data-set KEY, --lr, ...) becomes --grid KEY."""
    for key, _ in point.values:
        typed = f"{flag('sets')} {key}" if key in PARAMS else f"{flag('data_set')} {key}" if key in DATA_KEYS else flag(key)
        message = message.replace(typed, f"--grid {key}")
    return message


def _fits_its_data():
    """A check that a point's network fits its data and this machine's memory (setup.check_fits),
    loading each dataset once for all points."""
    loaded = {}

    def check(cfg: TrainConfig) -> None:
        key = (cfg.dataset, tuple(cfg.data_set or ()), cfg.data_dir)
        if key not in loaded:
            loaded[key] = load_dataset(cfg.dataset, cfg.data_set, seed=cfg.seed, data_dir=cfg.data_dir, download=cfg.download)
        check_fits(cfg, loaded[key])

    return check


def plan(base: TrainConfig, grid_items: list[str], seeds: int, out: Path, name: str | None = None) -> Sweep:
    """Validate every point's settings and name the sweep folder (HiltError on bad input)."""
    if seeds < 1:
        raise HiltError(f"--seeds must be >= 1 (got {seeds})")
    if not str(out).strip():
        raise HiltError(f"--out {str(out)!r}: give a folder for the sweep folders (default {COMMAND_DEFAULTS['sweep']['out']})")
    if name is not None:
        check_plain_name("--name", name)
    grid = parse_grid(grid_items, base.rule)
    sweep = Sweep(base, grid, list(range(base.seed, base.seed + seeds)), Path(out))
    for check in (validate, _fits_its_data()):  # settings first, then sizes against the data
        for point in sweep.points:
            try:
                check(point_config(base, point))
            except HiltError as err:
                typed = _as_typed(str(err), point)
                if typed == str(err):  # about a flag of the base settings, not the grid
                    raise
                where = ",".join(f"{k}={v}" for k, v in point.values)
                raise HiltError(f"--grid point {where}: {typed}") from None
    if name is None:  # readable pieces (a device file by its stem: never a path) and the settings' hash
        name = "-".join(_label(part) for part in (base.dataset, base.device, base.rule_label)) + f"-{sweep.settings_hash[:8]}"
    sweep.root = Path(out) / name
    return sweep


def _differences(old: dict, new: dict) -> list[str]:
    keys = [k for k in ("grid", "seeds", "rule_code", "device_files") if old.get(k) != new.get(k)]
    old_base, new_base = old.get("base", {}), new.get("base", {})
    return keys + sorted(k for k in set(old_base) | set(new_base) if old_base.get(k) != new_base.get(k) and k != "out")


def _claim(sweep: Sweep, force_new: bool) -> Path | None:
    """Check that the (locked) sweep folder is new or holds this sweep (the settings in sweep.json).
    Another sweep's folder is refused, or with `force_new` moved aside to <name>.replaced-<time>
    (returned: the caller starts over in a new folder)."""
    from datetime import datetime

    record = sweep.root / SWEEP_RECORD
    if record.is_file():
        changed = _differences(read_json(record), sweep.settings)
        if not changed:
            return None  # this sweep
        problem = f"holds a sweep with other settings (differs in: {', '.join(changed)})"
    elif any(not p.name.startswith(".") for p in sweep.root.iterdir()):
        problem = "holds files but no sweep.json (not a hilt sweep, or an older one)"
    else:
        return None
    if not force_new:
        raise HiltError(f"sweep folder {sweep.root} {problem}; give another --name, or --force-new to move "
                        "that folder aside and start over")
    aside = sweep.root.with_name(f"{sweep.root.name}.replaced-{datetime.now():%Y%m%d-%H%M%S}")
    sweep.root.rename(aside)
    return aside


def run(sweep: Sweep, jobs: int = 1, ray_address: str | None = None,
        on_point: Callable[[Point, dict], None] | None = None, force_new: bool = False) -> list[dict]:
    """Run the sweep's points not yet finished; returns one row per point (also sweep.csv/.parquet).
    A point that ends interrupted stops the sweep (KeyboardInterrupt is re-raised after saving)."""
    if jobs < 1:
        raise HiltError(f"--jobs must be >= 1 (got {jobs})")
    if ray_address:
        check_ray_address(ray_address)
    while True:
        sweep.root.mkdir(parents=True, exist_ok=True)
        with one_writer(sweep.root, f"sweep folder {sweep.root}"):
            aside = _claim(sweep, force_new)
            if aside is None:
                return _run(sweep, jobs, ray_address, on_point)
        (aside / WRITER).unlink(missing_ok=True)
        force_new = False  # once: a folder another process makes meanwhile is checked, not moved


def _run(sweep: Sweep, jobs: int, ray_address: str | None, on_point) -> list[dict]:
    write_json(sweep.root / SWEEP_RECORD, {**sweep.settings, "base": asdict(sweep.base),
                                           "settings_hash": sweep.settings_hash})
    tasks = [(p, asdict(point_config(sweep.base, p)), str(sweep.folder(p))) for p in sweep.points]
    results: dict[Point, dict] = {}

    def done(point, summary):
        results[point] = summary
        if on_point:
            on_point(point, summary)

    try:
        if jobs <= 1 and not ray_address:
            for point, cfg, folder in tasks:
                summary = run_point(cfg, folder)
                done(point, summary)
                if summary["status"] == RunStatus.INTERRUPTED:
                    raise KeyboardInterrupt
        else:
            _run_on_ray(tasks, jobs, ray_address, done)
    finally:
        rows = table(sweep, results)
        if rows:
            write_tables(sweep, rows)
    return rows


RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str) -> None:
    """HiltError within RAY_CONNECT_TIMEOUT_S when HOST:PORT (or ray://HOST:PORT) does not answer;
    ray.init itself retries for minutes. `auto` is left to Ray (it looks for a local cluster)."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise HiltError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise HiltError(f"--ray-address {address}: no Ray cluster answers there ({err.strerror or err}); "
                        "start one with `ray start --head`, or leave out --ray-address") from None


def _run_on_ray(tasks, jobs: int, address: str | None, done) -> None:
    try:
        import ray
    except ImportError:
        raise HiltError("--jobs/--ray-address need Ray: pip install -e '.[cluster]'") from None
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **{k: v for k, v in os.environ.items() if k == "HILT_XP"}}
    options = {"runtime_env": {"env_vars": env}, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, **options)
    except ConnectionError as err:
        raise HiltError(f"--ray-address {address}: cannot connect ({str(err).splitlines()[0]})") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        pending = {remote.remote(cfg, folder): point for point, cfg, folder in tasks}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(ref)
            try:
                done(point, ray.get(ref))
            except ray.exceptions.RayTaskError as err:
                cause = err.as_instanceof_cause()
                raise (HiltError(str(cause).splitlines()[-1]) if isinstance(cause, HiltError) else cause) from None
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()


def table(sweep: Sweep, results: dict[Point, dict]) -> list[dict]:
    """One row per point and seed, in grid order: swept values (typed), seed, status, metrics."""
    rows, keys = [], sweep.rule_keys
    for point in sweep.points:
        summary = results.get(point) or RunFolder(sweep.folder(point)).summary()
        if not summary:
            continue
        rows.append({**{k: _typed(k, v, keys) for k, v in point.values}, "seed": point.seed, "status": summary["status"],
                     **{m: summary.get(m) for m in METRICS}, "run_dir": str(sweep.folder(point))})
    return rows


def write_tables(sweep: Sweep, rows: list[dict]) -> None:
    """sweep.csv, sweep.parquet and the plots from the rows."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    write_csv(sweep.root / "sweep.csv", frame)
    frame.to_parquet(sweep.root / ".sweep.parquet.tmp", index=False)
    os.replace(sweep.root / ".sweep.parquet.tmp", sweep.root / "sweep.parquet")
    plot(sweep, frame[frame.status == RunStatus.FINISHED])


def plot(sweep: Sweep, frame, metric: str = "test_accuracy") -> None:
    """acc_vs_<key>.png per swept key (one line per value of the other keys), heatmap.png for 2-D grids.
    Text values (device, rule, ...) keep the grid's order."""
    if frame.empty:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    keys = list(sweep.grid)
    frame = frame.copy()
    text_keys = [k for k in keys if frame[k].dtype.kind not in "if"]
    for key in text_keys:
        frame[key] = pd.Categorical(frame[key], categories=[_typed(key, v, sweep.rule_keys) for v in sweep.grid[key]], ordered=True)
    fixed = {"rule": sweep.base.rule, "device": sweep.base.device, "dataset": sweep.base.dataset}
    title = ", ".join(f"{k} {v}" for k, v in fixed.items() if k not in keys)
    for key in keys:
        others = [k for k in keys if k != key]
        fig, ax = plt.subplots(figsize=(6, 4.2))
        groups = frame.groupby(others, observed=True) if others else [((), frame)]
        for label, part in groups:
            stats = part.groupby(key, sort=True, observed=True)[metric].agg(["mean", "std"]).fillna(0.0)
            x = stats.index.codes if key in text_keys else stats.index
            name = ", ".join(f"{k}={v}" for k, v in zip(others, label if isinstance(label, tuple) else (label,)))
            ax.errorbar(x, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=name or None)
        if key in text_keys:
            ax.set_xticks(range(len(sweep.grid[key])), sweep.grid[key], rotation=35, ha="right")
        elif frame[key].min() > 0 and frame[key].max() / frame[key].min() >= 100:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=f"{metric} (mean ± std over seeds)", title=title)
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(sweep.root / f"acc_vs_{key}.png", dpi=110)
        plt.close(fig)
    if len(keys) == 2:
        grid = frame.groupby(keys, observed=True)[metric].mean().unstack(keys[1])
        fig, ax = plt.subplots(figsize=(1.2 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 2))
        image = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto")
        ax.set(xticks=range(grid.shape[1]), xticklabels=[str(c) for c in grid.columns], xlabel=keys[1],
               yticks=range(grid.shape[0]), yticklabels=[str(i) for i in grid.index], ylabel=keys[0],
               title=f"{metric}, mean over seeds" + (f" ({title})" if title else ""))
        for (i, j), value in zip(itertools.product(range(grid.shape[0]), range(grid.shape[1])), grid.to_numpy().ravel()):
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
        fig.colorbar(image)
        fig.tight_layout()
        fig.savefig(sweep.root / "heatmap.png", dpi=110)
        plt.close(fig)
