"""Opening a run: a new run folder (or a run in memory) with its config.json record, or an
existing one to continue (`resume_config`: its own settings, what the user may change, a
plug-in rule's source checked against the run's record; `open_run`: its checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from hilt.analog import backend
from hilt.errors import HiltError
from hilt.experiments.run import checkpoint
from hilt.experiments.run.config import TrainConfig, flag
from hilt.experiments.run.files import versions
from hilt.experiments.run.run_folder import CONFIG, MemoryFolder, RunFolder, RunStatus
from hilt.experiments.run.setup import Setup
from hilt.rules import resolve
from hilt.rules.registry import builtin_options


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
    if summary.get("status") == RunStatus.DIVERGED:
        raise HiltError(f"{folder.what}: the run diverged ({summary.get('error')}); "
                        "start a new run with other settings")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in config and not _field_ok(config[f.name], getattr(defaults, f.name)):
            raise HiltError(f"{folder.what}: {CONFIG} is damaged: {f.name} = {config[f.name]!r} is not a valid value")
    for key in ("rule_options", "rule_params", "rule_source"):
        if not isinstance(config.get(key) or {}, dict):
            raise HiltError(f"{folder.what}: {CONFIG} is damaged: {key} is not an object")
    # the rule's options as it used them (run folders before 13/18 kept them apart, in rule_params)
    options = config.get("rule_params") or config.get("rule_options") or {}
    source = config.get("rule_source")
    cfg = TrainConfig(**{f.name: config[f.name] for f in fields(TrainConfig) if f.name in config})
    for key, value in given.items():
        if key == "epochs" or (key == "rule" and source):
            continue
        stored = options[key] if key in options else getattr(cfg, key, None)
        if key == "update" and stored is None:  # the preset's own algorithm: the run recorded which one
            stored = (config.get("device_params") or {}).get("update")
        value = _as_stored(value, stored)
        if value != stored:
            if key == "cost_table":
                raise HiltError("--resume: --cost gives another cost table than the run's; a resumed run keeps "
                                "its settings (only --epochs may change)")
            typed = flag(key) if key not in options or key in builtin_options() else f"--rule-opt {key}"
            theirs = "the run's default (it was not given)" if stored is None else f"the run's {stored}"
            raise HiltError(f"--resume: {typed} {value} differs from {theirs}; a resumed run "
                            "keeps its settings (only --epochs may change)")
    if source:
        cfg = replace(cfg, rule=_plugin_rule(folder, source, given.get("rule"), allow_rule_change))
    return replace(cfg, epochs=given.get("epochs", summary.get("epochs_target", cfg.epochs)))


def _as_stored(value, stored):
    """A rule option typed as text (--rule-opt KEY=TEXT), as the type of the run's recorded value."""
    if not isinstance(value, str) or stored is None or isinstance(stored, str):
        return value
    if isinstance(stored, bool):
        return {"true": True, "false": False}.get(value.lower(), value)
    try:
        return type(stored)(value)
    except ValueError:
        return value


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
        """The run's folder (None when kept in memory)."""
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
        try:
            folder.write_config(config_record(setup))
        except BaseException:  # interrupted or refused: no half-made run is left behind
            folder.discard()
            raise
        return Run(folder)
    folder = resume if isinstance(resume, (RunFolder, MemoryFolder)) else RunFolder(resume, f"--resume {resume}")
    ckpt, summary = folder.checkpoint(), folder.summary()
    closing = ckpt.epoch == cfg.epochs and summary.get("status") != RunStatus.FINISHED
    if ckpt.epoch >= cfg.epochs and not closing:
        raise HiltError(f"{folder.what}: the run already has {ckpt.epoch} epochs; "
                        f"pass --epochs N with N > {ckpt.epoch} to continue it")
    resumes = summary.get("resumes", []) + [{"from_epoch": ckpt.epoch, "to_epochs": cfg.epochs}]
    return Run(folder, ckpt, resumes)


def config_record(setup: Setup) -> dict:
    """config.json: every setting (resolved), the effective device and rule parameters, versions."""
    cfg, net, rule = setup.cfg, setup.net, setup.rule
    spec = setup.spec
    record = {
        **asdict(cfg),
        "model": net.spec,
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
