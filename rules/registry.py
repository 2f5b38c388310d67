"""Which rules exist, and how a name on the command line (or in the API, a recipe, a sweep grid)
becomes a rule.

A rule is named by one of:

    bp, dp_adjoint, ...             a built-in rule (BUILTIN)
    NAME                            an installed plug-in: an entry point of the group `hilt.rules`
                                    (`[project.entry-points."hilt.rules"] NAME = "package.module:Class"`)
    path/to/file.py:Class           a class in a Python file
    package.module:Class            a class in an importable module

The class must subclass `hilt.rules.Rule`. Its options are its constructor's parameters, each with
a type (float, int, str or bool, optionally `| None`), a default, and a one-line doc as `Annotated`
metadata; a plug-in's options are declared exactly as a built-in's. `resolve` checks all of that
and gives HiltError with one line for every problem (a file or module not found, a name that is
not a Rule subclass, an option without type or default, an entry point named like a built-in).
When importing a plug-in raises, its traceback goes to a log file named in that line.

A run records where its rule came from (`RuleInfo.record`: the spec, the file's absolute path and
the SHA-256 of its source), so that a resume can tell when the code changed; the run folder never
holds the code itself.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import tempfile
import traceback
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from hilt.errors import HiltError
from hilt.rules.base import Rule
from hilt.rules.bp import Backprop
from hilt.rules.clapp import Clapp, ClappPP, ClappPPBoth, ClappPPDFB, ClappPPNoSpatial
from hilt.rules.contrastive import BPClappPP, BPInfoNCE
from hilt.rules.dfa import DFA, ClappDFA
from hilt.rules.dual_prop import DualPropagation, DualPropagationAdjoint
from hilt.rules.equilibrium import EquilibriumPropagation
from hilt.rules.forward_forward import ForwardForward
from hilt.rules.pc import ClappPC, PredictiveCoding
from hilt.rules.scff import SCFF

BUILTIN: dict[str, type[Rule]] = {
    "bp": Backprop,
    "dp": DualPropagation,
    "dp_adjoint": DualPropagationAdjoint,
    "dfa": DFA,
    "pc": PredictiveCoding,
    "ep": EquilibriumPropagation,
    "ff": ForwardForward,
    "scff": SCFF,
    "clapp": Clapp,
    "clapp_pp": ClappPP,
    "clapp_pp_nospatial": ClappPPNoSpatial,
    "clapp_pp_dfb": ClappPPDFB,
    "clapp_pp_both": ClappPPBoth,
    "clapp_dfa": ClappDFA,
    "clapp_pc": ClappPC,
    "bp_clapp_pp": BPClappPP,
    "bp_infonce": BPInfoNCE,
}
ENTRY_POINT_GROUP = "hilt.rules"
OPTION_KINDS = (float, int, str, bool)
SPEC_FORMS = "a built-in rule, an installed plug-in, path/to/file.py:Class or package.module:Class"


@dataclass(frozen=True)
class Option:
    """One option of a rule: its name, type (float, int, str or bool), default and one-line doc."""

    name: str
    kind: type
    default: object
    doc: str

    def parse(self, value, where: str):
        """`value` (text from the command line or a grid, or a Python value) as this option's type;
        `where` starts the message of a HiltError (e.g. "--grid", "rule bp: option")."""
        what = f"{where} {self.name}"
        if value is None or (isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool))):
            return value
        if isinstance(value, str):
            if self.kind is bool:
                if value.lower() not in ("true", "false"):
                    raise HiltError(f"{what}={value}: expected true or false")
                return value.lower() == "true"
            try:
                return self.kind(value)
            except ValueError:
                raise HiltError(f"{what}={value}: expected {'an integer' if self.kind is int else 'a number'}") from None
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        raise HiltError(f"{what}={value!r}: expected {self.kind.__name__}")


@dataclass(frozen=True)
class RuleInfo:
    """A resolved rule name: the class, where it comes from, its options."""

    spec: str  # as the user named it
    cls: type
    source: str  # "built-in", "entry point (DIST)", "file PATH", "module NAME"
    file: Path | None  # the source file of a plug-in (None for built-ins)

    @property
    def builtin(self) -> bool:
        """Whether it is one of hilt's own rules."""
        return self.source == "built-in"

    @property
    def label(self) -> str:
        """The rule in run-folder names: a built-in or entry-point name as it is, else the class name."""
        return self.cls.__name__ if ":" in self.spec else self.spec

    @property
    def description(self) -> str:
        """The first line of the class's docstring."""
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else "(no docstring)"

    @property
    def options(self) -> dict[str, Option]:
        """name -> Option, from the class's constructor (HiltError for a bad declaration)."""
        return declared_options(self.cls, self.spec)

    def sha256(self) -> str | None:
        """The SHA-256 of a plug-in's source file (None for a built-in)."""
        return _sha256(self.file) if self.file else None

    def record(self) -> dict | None:
        """What config.json keeps of a plug-in rule (None for a built-in): spec, file, SHA-256."""
        if self.builtin:
            return None
        return {"spec": self.spec, "source": self.source, "path": str(self.file) if self.file else None,
                "class": self.cls.__name__, "sha256": self.sha256()}

    def make(self, **options) -> Rule:
        """The rule with `options` (None: the rule's default); HiltError on an unknown or mistyped one."""
        return self.cls(**self.typed(options))

    def typed(self, options: dict) -> dict:
        """The options given (not None), each checked and converted to its declared type."""
        declared = self.options
        given = {k: v for k, v in options.items() if v is not None}
        for key in given:
            if key not in declared:
                users = builtin_options().get(key, (None, ()))[1]
                named = "--" + key.replace("_", "-") if users else f"option {key!r}"
                where = f"; it applies to: {', '.join(users)}" if users else ""
                allowed = f" (its options: {', '.join(declared)})" if declared else " (it has no options)"
                raise HiltError(f"rule {self.spec} takes no {named}{allowed}{where}")
        return {k: declared[k].parse(v, f"rule {self.spec}: option") for k, v in given.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _plain_type(hint):
    """float for `float`, int for `int | None`; None when the hint is not one of OPTION_KINDS."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [h for h in typing.get_args(hint) if h is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if hint in OPTION_KINDS else None


def declared_options(cls: type, spec: str) -> dict[str, Option]:
    """The options of a rule class, from its constructor (HiltError for one without type or default)."""
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception as err:  # an annotation that names something undefined
        raise HiltError(f"rule {spec}: its constructor's annotations cannot be read ({type(err).__name__}: {err})") from None
    options = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise HiltError(f"rule {spec}: constructor parameter {param}: options are named parameters "
                            "with a type and a default (no *args, **kwargs or positional-only)")
        hint, doc = hints.get(name), ""
        if typing.get_origin(hint) is typing.Annotated:
            hint, *meta = typing.get_args(hint)
            doc = next((m for m in meta if isinstance(m, str)), "")
        kind = _plain_type(hint)
        if kind is None:
            raise HiltError(f"rule {spec}: option {name!r} needs a type (float, int, str or bool, optionally "
                            f"| None){'' if hint is None else f'; it has {hint!r}'}")
        if param.default is param.empty:
            raise HiltError(f"rule {spec}: option {name!r} needs a default value")
        options[name] = Option(name, kind, param.default, doc)
    return options


_ENTRY_POINTS: dict[tuple, dict] = {}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed plug-ins by name (looked up once per sys.path: a look-up takes ~5 ms)."""
    key = tuple(sys.path)
    if key not in _ENTRY_POINTS:
        _ENTRY_POINTS[key] = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _ENTRY_POINTS[key]


def _import_failed(spec: str, what: str) -> HiltError:
    """The current exception's traceback into a log file; the one line that names it."""
    err = sys.exc_info()[1]
    fd, log = tempfile.mkstemp(prefix="hilt-rule-error-", suffix=".log")
    with open(fd, "w") as fh:
        fh.write(f"importing rule {spec} ({what}):\n{traceback.format_exc()}")
    line = f"{type(err).__name__}: {err}".splitlines()[0]
    return HiltError(f"rule {spec}: importing {what} raised {line} (traceback in {log})")


def _load_file(spec: str, path: Path):
    if not path.is_file():
        raise HiltError(f"rule {spec}: no such file {path}" + ("" if path.suffix == ".py" else " (a .py file)"))
    name = f"hilt_rule_plugin_{_sha256(path)[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and typing look the module up by name while it runs
    try:
        module_spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[name]
        if isinstance(err, KeyboardInterrupt):
            raise
        raise _import_failed(spec, str(path)) from None
    return module


def _load_module(spec: str, name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise HiltError(f"rule {spec}: no module named {name!r} (a rule is {SPEC_FORMS})") from None
        raise _import_failed(spec, f"module {name}") from None
    except Exception:
        raise _import_failed(spec, f"module {name}") from None


def _class(spec: str, module, class_name: str) -> type:
    cls = getattr(module, class_name, None)
    if cls is None:
        raise HiltError(f"rule {spec}: {getattr(module, '__file__', None) or module.__name__} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        raise HiltError(f"rule {spec}: {class_name} is not a subclass of hilt.rules.Rule")
    return cls


def _file_of(cls: type) -> Path | None:
    try:
        return Path(inspect.getfile(cls)).resolve()
    except (TypeError, OSError):
        return None


def resolve(spec: str) -> RuleInfo:
    """The rule that `spec` names (see the module's docstring); HiltError with one line otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise HiltError(f"rule {spec!r}: give {SPEC_FORMS}")
    if spec in BUILTIN:
        if spec in _entry_points():  # an installed plug-in claims a built-in's name: which one is meant?
            _from_entry_point(_entry_points()[spec])
        return RuleInfo(spec, BUILTIN[spec], "built-in", None)
    where, colon, class_name = spec.rpartition(":")
    if colon and where and class_name.isidentifier():
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where).expanduser().resolve()
            cls = _class(spec, _load_file(spec, path), class_name)
            info = RuleInfo(spec, cls, f"file {path}", path)
        else:
            cls = _class(spec, _load_module(spec, where), class_name)
            info = RuleInfo(spec, cls, f"module {where}", _file_of(cls))
        info.options  # noqa: B018 (checks the declarations now, with one line)
        return info
    entry_points = _entry_points()
    if spec in entry_points:
        return _from_entry_point(entry_points[spec])
    raise HiltError(f"unknown rule {spec!r}; allowed: {', '.join([*BUILTIN, *entry_points])}, "
                    "or path/to/file.py:Class, package.module:Class")


def _from_entry_point(ep) -> RuleInfo:
    dist = ep.dist.name if ep.dist else "?"
    if ep.name in BUILTIN:
        raise HiltError(f"rule plug-in {ep.value!r} of {dist}: its name {ep.name!r} clashes with a built-in rule; "
                        f"rename its entry point in group {ENTRY_POINT_GROUP}")
    module, _, class_name = ep.value.partition(":")
    cls = _class(ep.name, _load_module(ep.name, module.strip()), class_name.strip())
    info = RuleInfo(ep.name, cls, f"entry point ({dist})", _file_of(cls))
    info.options  # noqa: B018
    return info


def available() -> list[RuleInfo | tuple[str, str]]:
    """Every built-in rule and installed plug-in, in that order; a plug-in that fails to load is
    (name, its one-line problem) instead."""
    found: list = [RuleInfo(name, cls, "built-in", None) for name, cls in BUILTIN.items()]
    for ep in _entry_points().values():
        try:
            found.append(_from_entry_point(ep))
        except HiltError as err:
            found.append((ep.name, str(err)))
    return found


@functools.cache
def builtin_options() -> dict[str, tuple[Option, tuple[str, ...]]]:
    """Every option of the built-in rules -> (its declaration, the rules that take it): the CLI's
    flags. Made once (BUILTIN is fixed); treat it as read-only."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for name, cls in BUILTIN.items():
        for option in declared_options(cls, name).values():
            found.setdefault(option.name, (option, []))[1].append(name)
    return {key: (option, tuple(users)) for key, (option, users) in found.items()}
