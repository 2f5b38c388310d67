"""hilt from Python: `import hilt`, then `hilt.train(...)`, `hilt.compare(...)`, `hilt.sweep(...)`, ...

    import hilt

    run = hilt.train(rule="dp_adjoint", device="rram", epochs=5, out=None)   # out=None: nothing written
    run.summary["test_accuracy"]            # the summary also written to summary.json
    run.metrics                             # pandas DataFrame: one row per epoch and split, costs included
    run.network.predict(x)                  # class scores (n x classes) of the rule's own prediction
    run.network.weights()                   # per-layer weights read out, NumPy (out x in [+ bias column])
    run = run.resume(epochs=10)             # continue it (in memory or in its run folder)

The keyword arguments of `train` (and of compare and sweep) are TrainConfig's fields (dataset,
model, device, sets, update, rule, epochs, batch_size, lr, lr_schedule, seed, optimizer, momentum,
weight_decay, activation, log_alignment, keep_best, eval_every, out, data_set, data_dir, cost) and
the options of the rule (e.g. alpha, beta for dp_adjoint), checked exactly as the command line
checks them: a mistake is a `hilt.HiltError` with the CLI's one-line message. `sets` and
`data_set` take a list of "KEY=VALUE" strings or a dict; `device` also takes a `hilt.Device`;
`rule` also takes a plug-in, "path/to/file.py:Class" or "package.module:Class".

The command line is a client of these functions (cli.py): the same settings give the same run,
bit for bit on the exact path. Importing hilt is light: torch, aihwkit and Ray are imported when
a function needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

from hilt.errors import HiltError
from hilt.experiments.run.config import COMPARE_EVERY, TrainConfig

_FIELDS = {f.name: f for f in fields(TrainConfig)}


# ---------------------------------------------------------------------------------------------
# settings


def _key_values(name: str, value) -> list[str]:
    """sets / data_set: a list of "KEY=VALUE" strings, or a dict."""
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise HiltError(f"{name}: expected a list of 'KEY=VALUE' strings or a dict (got {value!r})")


_KINDS = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


def _check_field(key: str, value):
    """A TrainConfig field's value from Python, of the type the field declares (HiltError otherwise)."""
    if key in ("sets", "data_set"):
        return _key_values(key, value)
    declared = _FIELDS[key].type  # e.g. "int | None" (annotations are strings here)
    kind = _KINDS[declared.removesuffix(" | None")]
    if value is None:
        if declared.endswith("| None"):
            return None
        raise HiltError(f"{key}=None: give a value (default {getattr(TrainConfig(), key)!r})")
    if kind is str and isinstance(value, Path):
        return str(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise HiltError(f"{key}={value!r}: expected {kind.__name__}")
    return value


def check_environment() -> None:
    """What the environment tells hilt (HILT_XP) is usable here; HiltError naming it otherwise."""
    from hilt.analog.backend import check_environment

    check_environment()


def settings_to_config(settings: dict) -> TrainConfig:
    """TrainConfig from keyword settings: TrainConfig fields, the rule's options, `cost` (a cost
    table's path or dict) and `device` as a name or a Device (HiltError naming a wrong one)."""
    from hilt.rules import resolve
    from hilt.rules.registry import builtin_options

    settings, base = dict(settings), TrainConfig()
    device = settings.get("device")
    if isinstance(device, Device):
        settings["device"], settings["device_definition"] = device.label, device.definition
    elif "device" in settings:
        settings["device_definition"] = None
    if "cost" in settings:
        settings["cost_table"] = _cost_table(settings.pop("cost"))
    rule = settings.get("rule", base.rule)
    if not isinstance(rule, str):
        raise HiltError(f"rule={rule!r}: expected a rule's name (see hilt.list_rules())")
    options = dict(base.rule_options) | dict(settings.pop("rule_options", None) or {})
    declared, builtin = resolve(rule).options, builtin_options()
    for key in [k for k in settings if k not in _FIELDS]:
        if key not in declared and key not in builtin:  # a built-in's option: the rule says it takes none
            raise HiltError(f"unknown setting {key!r}; allowed: {', '.join(_FIELDS)}, cost, and the options of rule "
                            f"{rule}: {', '.join(declared) or '(none)'}")
        options[key] = settings.pop(key)
    changes = {k: _check_field(k, v) for k, v in settings.items()}
    return replace(base, **changes, rule_options=options)


def _cost_table(cost) -> dict | None:
    from hilt.experiments.measure.cost import check_cost_table, load_cost_table

    if cost is None:
        return None
    if isinstance(cost, dict):
        return check_cost_table(cost, "cost")
    return load_cost_table(str(cost))


def configure(given: dict, base: TrainConfig | None = None, resume=None, recipe: str | None = None,
              allow_rule_change: bool = False) -> TrainConfig:
    """The settings of a run: a resumed run's own (`given` may only change epochs, or name its
    plug-in rule anew), a recipe's with `given` on top, `base` (the command line's settings, all of
    them) or TrainConfig's defaults with `given` on top. `given` holds what the user named:
    TrainConfig fields and rule options."""
    from hilt.experiments.run.recipes import apply_recipe
    from hilt.experiments.run.resume import resume_config

    if resume is not None and recipe is not None:
        raise HiltError("--resume continues a run with its own settings; leave out --recipe")
    if resume is not None:
        return resume_config(resume._folder if isinstance(resume, Run) else Path(resume), given,
                             allow_rule_change=allow_rule_change)
    if recipe is not None:
        return apply_recipe(recipe, {k: _key_values(k, v) if k in ("sets", "data_set") else v for k, v in given.items()})
    return base if base is not None else settings_to_config(given)


# ---------------------------------------------------------------------------------------------
# runs


class Model:
    """A trained network with its rule: `predict(x)` as the rule predicts, `weights()` read out."""

    def __init__(self, setup):
        self._setup = setup
        self._fitted = False

    @property
    def network(self):
        """The hilt Network itself (blocks, crossbars)."""
        return self._setup.net

    def predict(self, x, batch_size: int | None = None):
        """Class scores (n x n_classes, NumPy) of inputs x (n x input shape) by the rule's own
        prediction: the output for most rules, a linear probe fitted on the run's training data for
        self-supervised ones."""
        import numpy as np

        from hilt.analog import backend
        from hilt.analog.network import EVAL_BATCH

        setup = self._setup
        backend.select(analog=not setup.spec.is_exact)
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(setup.data.input_shape):
            raise HiltError(f"predict: inputs of shape {x.shape[1:]} per sample; this network takes "
                            f"{tuple(setup.data.input_shape)}")
        if not self._fitted:
            setup.rule.fit_readout(setup.net, setup.data)
            self._fitted = True
        size = batch_size or EVAL_BATCH
        return np.concatenate([backend.to_numpy(setup.rule.predict(setup.net, backend.asarray(x[i : i + size])))
                               for i in range(0, len(x), size)])

    def weights(self) -> list:
        """Per layer, the weights read out as NumPy arrays (out x in, plus a bias column when the
        layer has a bias); the rule's own crossbars are in `aux_weights()`."""
        from hilt.analog import backend

        return [backend.to_numpy(w).copy() for w in self._setup.net.weights()]

    def aux_weights(self) -> dict:
        """The rule's own crossbars (CLAPP's B, DFA's feedback, ...) by name, read out as NumPy."""
        from hilt.analog import backend

        return {name: backend.to_numpy(c.weights()).copy() for name, c in self._setup.net.aux.items()}


class Run:
    """A training run: its summary, metrics, trained network and folder (None when kept in memory)."""

    def __init__(self, folder, setup):
        self._folder, self._setup = folder, setup
        self.network = Model(setup)

    def __repr__(self) -> str:
        s = self.summary
        return (f"Run({s.get('rule')} on {s.get('device')}, {s.get('status')}, {s.get('epochs')} epochs, "
                f"test accuracy {s.get('test_accuracy', float('nan')):.4f}, run_dir={self.run_dir})")

    @property
    def config(self) -> TrainConfig:
        """The run's settings, resolved (model, batch size, cost table)."""
        return self._setup.cfg

    @property
    def summary(self) -> dict:
        """Status, final metrics, costs (what summary.json holds)."""
        return self._folder.summary()

    @property
    def status(self) -> str | None:
        """summary.json's status: running, finished, interrupted, diverged or crashed."""
        return self.summary.get("status")

    @property
    def metrics(self):
        """pandas DataFrame: one row per epoch and split (train, val, test), losses, accuracies,
        what the crossbars did and its estimated energy and latency."""
        import pandas as pd

        return pd.DataFrame(self._folder.metrics())

    @property
    def run_dir(self) -> Path | None:
        """The run folder (None for a run kept in memory, out=None)."""
        return self._folder.path

    def resume(self, epochs: int, allow_rule_change: bool = False, on_epoch=None, on_step=None) -> "Run":
        """Continue this run to `epochs` in total (in memory, or in its run folder)."""
        return train(resume=self, epochs=epochs, allow_rule_change=allow_rule_change, on_epoch=on_epoch,
                     on_step=on_step)


def run_config(cfg: TrainConfig, resume=None, on_step=None, on_epoch=None) -> Run:
    """Build and train the run `cfg` (a new run, or `resume`: a run folder's path or a Run)."""
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.resume import open_run
    from hilt.experiments.run.trainer import train as train_setup

    setup = build(cfg)
    folder = resume._folder if isinstance(resume, Run) else None if resume is None else Path(resume)
    opened = open_run(setup, folder)
    train_setup(setup, on_step=on_step, on_epoch=on_epoch, run=opened)
    return Run(opened.folder, setup)


def train(rule: str | None = None, device=None, dataset: str | None = None, model: str | None = None,
          epochs: int | None = None, *, resume=None, recipe: str | None = None, allow_rule_change: bool = False,
          on_epoch: Callable[[dict, dict], None] | None = None,
          on_step: Callable[[int, int, int], None] | None = None, **settings) -> Run:
    """Train `rule` on `device` (see the module's docstring for the settings); returns the Run.

    resume: continue a run (its folder's path, or a Run) to `epochs`; recipe: start from a paper's
    settings (`hilt.list_recipes()`), the settings given override them. on_epoch(train_row, test_row)
    is called after every epoch (e.g. a live plot); on_step(epoch, step, steps) after every step.
    Ctrl-C ends the run with status "interrupted" (resume it with `resume`); a diverged run ends
    "diverged". out=None keeps the run in memory and writes no file.
    """
    named = {"rule": rule, "device": device, "dataset": dataset, "model": model, "epochs": epochs}
    given = {k: v for k, v in named.items() if v is not None} | settings
    cfg = configure(given, resume=resume, recipe=recipe, allow_rule_change=allow_rule_change)
    return run_config(cfg, resume=resume, on_step=on_step, on_epoch=on_epoch)


def load_run(run_dir) -> Run:
    """A run folder, opened with its network at its last checkpoint (to predict, read weights,
    look at metrics, or resume)."""
    from hilt.experiments.run import checkpoint
    from hilt.experiments.run.run_folder import RunFolder
    from hilt.experiments.run.setup import build
    from hilt.experiments.run.resume import resume_config

    folder = RunFolder(Path(run_dir), f"load_run({str(run_dir)!r})")
    setup = build(resume_config(folder, {}))
    if folder.has_checkpoint():
        checkpoint.restore(setup.net, folder.checkpoint(), folder.what)
    return Run(folder, setup)


# ---------------------------------------------------------------------------------------------
# studies


@dataclass
class Comparison:
    """compare(): the comparison's summary, its tidy table (compare.csv) and the two runs' folders."""

    summary: dict
    table: object  # pandas DataFrame: path, epoch, layer, metric, value

    @property
    def run_dir(self) -> Path:
        """The comparison's folder (both runs, compare.csv, fidelity.csv, compare.png)."""
        return Path(self.summary["run_dir"])


def compare(every: int | None = None, on_run: Callable[[str], dict] | None = None, *, resume=None, **settings) -> Comparison:
    """Train the rule on the exact path and on the device (same init, same data order); writes a
    comparison folder under `out` (compare.csv, fidelity.csv, compare.png, both runs). Update
    fidelity is sampled every `every` steps (default COMPARE_EVERY, 50). `resume` (a comparison
    folder) finishes an interrupted comparison; settings may then only change epochs."""
    if resume is not None:
        cfg, every = reopen_comparison(resume, {**settings, "every": every})
        return compare_config(cfg, every, on_run, resume=resume)
    return compare_config(settings_to_config(settings), COMPARE_EVERY if every is None else every, on_run)


def reopen_comparison(resume, given: dict) -> tuple[TrainConfig, int]:
    """An interrupted comparison folder's settings and `every`; `given` (the settings named) may
    only change epochs."""
    from hilt.experiments.studies.compare import reopen

    return reopen(Path(resume), given)


def compare_config(cfg: TrainConfig, every: int = COMPARE_EVERY, on_run=None, resume=None) -> Comparison:
    """compare() for a TrainConfig already made (the CLI's path); `resume`: the comparison folder to
    finish (cfg and every from reopen_comparison)."""
    import pandas as pd

    from hilt.experiments.studies.compare import compare as run_compare

    if resume is None and cfg.out is None:
        raise HiltError("compare writes a comparison folder: give out=PATH")
    result = run_compare(cfg, every=every, on_run=on_run, resume=None if resume is None else Path(resume))
    path = Path(result["run_dir"]) / "compare.csv"
    return Comparison(result, pd.read_csv(path) if path.is_file() else pd.DataFrame())


def sweep(grid, seeds: int = 1, jobs: int = 1, ray_address: str | None = None, name: str | None = None,
          force_new: bool = False, on_point=None, **settings):
    """Train every point of `grid` ({"alpha": [0, 0.5], "dw_min": [...]} or ["alpha=0,0.5", ...]) times
    `seeds`, each in its own run folder under out (COMMAND_DEFAULTS["sweep"])/NAME; rerunning it
    resumes. Returns the sweep's table (sweep.csv) as a pandas DataFrame."""
    import pandas as pd

    from hilt.experiments.run.config import COMMAND_DEFAULTS

    settings = {**COMMAND_DEFAULTS["sweep"], **settings}
    plan = plan_sweep(settings_to_config(settings), grid, seeds, name)
    return pd.DataFrame(run_sweep(plan, jobs, ray_address, force_new, on_point))


def plan_sweep(cfg: TrainConfig, grid, seeds: int = 1, name: str | None = None):
    """A sweep's plan for a TrainConfig: every point's settings checked, the sweep folder named
    (HiltError on bad input)."""
    from hilt.experiments.studies import sweep as sweeps

    if isinstance(grid, dict):
        grid = [f"{k}={','.join(map(str, v if isinstance(v, (list, tuple)) else [v]))}" for k, v in grid.items()]
    if cfg.out is None:
        raise HiltError("sweep writes a sweep folder: give out=PATH")
    return sweeps.plan(cfg, list(grid or []), seeds, Path(cfg.out), name)


def run_sweep(plan, jobs: int = 1, ray_address: str | None = None, force_new: bool = False, on_point=None) -> list[dict]:
    """Run a planned sweep (plan_sweep); one row per point and seed."""
    from hilt.experiments.studies import sweep as sweeps

    return sweeps.run(plan, jobs=jobs, ray_address=ray_address, force_new=force_new, on_point=on_point)


def robustness(run_dir, draws: int = 5, on_point=None):
    """Test accuracy of a finished run on inference tiles under drift, read noise, DAC/ADC bits and
    stuck devices (RUN_DIR/robustness/); a DataFrame of (family, value, draw, accuracy)."""
    import pandas as pd

    from hilt.experiments.studies.robustness import robustness as run_robustness

    return pd.DataFrame(run_robustness(Path(run_dir), draws, on_point=on_point))


@dataclass
class Report:
    """report(): the table (one row per group: n, mean ± std per metric), as Markdown, and notes."""

    table: object  # pandas DataFrame
    markdown: str
    notes: list[str]
    runs: object  # pandas DataFrame: one row per finished run


def report(*paths, group_by: list[str] | str | None = None, metrics: list[str] | None = None,
           energy_to: float | None = None, plot=None) -> Report:
    """Finished runs under `paths` (run folders or folders holding them), grouped by every setting
    that differs (or `group_by`), with n and mean ± std of each metric."""
    from hilt.experiments.studies.report import (check_request, collect, energy_column, markdown, notes,
                                                 plot_accuracy_vs_energy, summarize)

    if len(paths) == 1 and isinstance(paths[0], (list, tuple)):
        paths = tuple(paths[0])
    if not paths:
        raise HiltError("report: give run folders, or folders holding them")
    if energy_to is not None and not 0 < energy_to <= 1:
        raise HiltError(f"--energy-to {energy_to}: a test accuracy in (0, 1]")
    collected = collect([Path(p) for p in paths], energy_to)
    has_costs = collected.frame["train_energy_j"].notna().any()  # runs from before the counters have none
    metrics = list(metrics or ["test_accuracy", "test_accuracy_exact_readout", *(["train_energy_j"] if has_costs else [])])
    if energy_to is not None:
        metrics.append(energy_column(energy_to))
    if isinstance(group_by, str):
        group_by = [g.strip() for g in group_by.split(",") if g.strip()]
    check_request(collected.frame, collected.settings, group_by, metrics, plot)
    table, pooled = summarize(collected.frame, group_by, metrics, collected.settings)
    if plot:
        plot_accuracy_vs_energy(collected, Path(plot), [c for c in table.columns if c in collected.frame.columns
                                                        and c not in metrics])
    return Report(table, markdown(table), list(notes(collected, pooled)), collected.frame)


# ---------------------------------------------------------------------------------------------
# devices and rules


class Device:
    """A device definition (what a device file holds: one aihwkit pulsed device class and its
    parameters, read and updated through the presets' IO), usable as `device=` anywhere."""

    def __init__(self, definition: dict, fit=None):
        from hilt.devices.device_file import check_definition

        self.definition = check_definition(definition, f"device {definition.get('name', '') if isinstance(definition, dict) else ''}")
        self.fit = fit  # the fit's result, when made by fit_device

    @classmethod
    def from_params(cls, device_class: str, name: str = "my-device", description: str = "", **params) -> "Device":
        """A device from an aihwkit device class (e.g. "SoftBoundsDevice") and its parameters."""
        from hilt.devices.device_file import FORMAT

        return cls({"format": FORMAT, "name": name, "description": description,
                    "device": {"class": device_class, "params": params}})

    @classmethod
    def load(cls, path) -> "Device":
        """A device file (`hilt devices fit` writes them) as a Device."""
        from hilt.devices.device_file import read_device_file

        return cls(read_device_file(str(path)))

    @property
    def name(self) -> str:
        """The device's name (runs are named after it)."""
        return self.definition.get("name") or "device"

    @property
    def label(self) -> str:
        """How runs name it (--device NAME.json, as if read from a file of that name)."""
        return f"{self.name}.json"

    @property
    def params(self) -> dict:
        """The aihwkit device class's parameters, in weight units (dw_min, w_min, w_max, ...)."""
        return dict(self.definition["device"]["params"])

    def __repr__(self) -> str:
        return f"Device({self.name!r}, {self.definition['device']['class']}, {self.params})"

    def save(self, path, force: bool = False) -> Path:
        """Write it as a device file (`--device PATH` on the command line); refuses to overwrite
        an existing file unless `force`."""
        from hilt.experiments.run.files import write_json

        path = Path(path)
        if path.suffix != ".json":
            raise HiltError(f"{path}: a device file ends in .json")
        if path.exists() and not force:
            raise HiltError(f"{path} exists; choose another path or pass force=True to overwrite it")
        write_json(path, self.definition)
        return path


@dataclass
class DeviceFit:
    """What fit_device found beyond the device: the fit, the measurements, the preset ranking."""

    result: object  # devices.fitting.Fit: params, stderr, rmse, states, seconds
    measurements: object
    preset_rmse: list | None


def fit_device(data, model: str = "softbounds", g_min: float | None = None, g_max: float | None = None,
               w_min: float = -1.0, w_max: float = 1.0, name: str | None = None,
               compare_presets: bool = False, plot=None, non_accumulating: str = "write") -> Device:
    """Fit an aihwkit device model to measured pulse-response data (a CSV: pulse, conductance[,
    trace, device], or aihwkit's two-column up/down layout); a Device (`.save(path)`, or device=
    directly), its fit in `.fit`. The reads' scatter is split into noise that accumulates
    (dw_min_std) and noise that does not, which goes where `non_accumulating` says (write: the
    device's write_noise_std; read: left out, as the instrument's)."""
    from hilt.devices.device_file import MODELS
    from hilt.devices.fitting import definition, fit, plot_fit, preset_errors, read_measurements

    if model not in MODELS:
        raise HiltError(f"--model {model}: unknown model; allowed: {', '.join(MODELS)}")
    meas = read_measurements(str(data), g_min, g_max, w_min, w_max)
    result = fit(meas, model, non_accumulating)
    record = definition(result, meas, name or f"{Path(data).stem}-{model}")
    errors = preset_errors(result.layout) if compare_presets else None
    if errors:
        record["fit"]["preset_rmse"] = dict(errors)
    if plot:
        plot_fit(result, meas, Path(plot))
    return Device(record, fit=DeviceFit(result, meas, errors))


def list_devices():
    """Device presets and NeuroSim devices: a DataFrame (name, kind, description)."""
    import pandas as pd

    from hilt.devices.neurosim import NEUROSIM_DEVICES
    from hilt.devices.presets import PRESETS

    return pd.DataFrame([{"name": n, "kind": "preset", "description": d} for n, (_, d) in PRESETS.items()]
                        + [{"name": n, "kind": "neurosim", "description": d} for n, (_, d) in NEUROSIM_DEVICES.items()])


def list_rules():
    """Every built-in rule and installed plug-in: a DataFrame (name, source, description, options
    with their defaults)."""
    import pandas as pd

    from hilt.rules.registry import available

    rows = []
    for info in available():
        if isinstance(info, tuple):
            rows.append({"name": info[0], "source": "plug-in (fails to load)", "description": info[1], "options": ""})
            continue
        rows.append({"name": info.spec, "source": info.source, "description": info.description,
                     "options": ", ".join(f"{k}={o.default}" for k, o in info.options.items())})
    return pd.DataFrame(rows)


def list_recipes() -> dict:
    """The papers' recipes: name -> settings (train(recipe=NAME, ...))."""
    from hilt.experiments.run.recipes import recipes as all_recipes

    return all_recipes()


__all__ = ["Comparison", "Device", "Model", "Report", "Run", "compare", "fit_device", "load_run",
           "list_devices", "list_recipes", "list_rules", "report", "robustness", "sweep", "train"]
