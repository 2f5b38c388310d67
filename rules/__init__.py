"""Learning rules, each written against the crossbar primitives only. Registry for the CLI.

A rule's options are its constructor's parameters (name, type, default), and OPTION_DOCS says
what each means: `train`'s flags, sweep's grid keys, `rules` and config.json are derived from
these two (`option_types`), so an option is declared once.
"""

from __future__ import annotations

import inspect
import types
import typing

from hilt.errors import HiltError
from hilt.rules.base import Rule
from hilt.rules.bp import Backprop
from hilt.rules.clapp import Clapp, ClappPP, ClappPPBoth, ClappPPDFB, ClappPPNoSpatial
from hilt.rules.contrastive import BPClappPP, BPInfoNCE
from hilt.rules.dfa import DFA, ClappDFA
from hilt.rules.dual_prop import DualPropagation, DualPropagationAdjoint
from hilt.rules.pc import ClappPC, PredictiveCoding

RULES: dict[str, tuple[type[Rule], str]] = {
    "bp": (Backprop, "backprop: transposed reads carry the error, pulsed updates with d = dL/da / B"),
    "dp": (DualPropagation, "dual propagation (Hoier 2023): dyadic states, stable for alpha = 1/2"),
    "dp_adjoint": (DualPropagationAdjoint, "adjoint dual propagation DP-transpose (Hoier & Zach 2024): stable for any alpha"),
    "dfa": (DFA, "direct feedback alignment: fixed random feedback crossbars carry the output error"),
    "pc": (PredictiveCoding, "incremental predictive coding (iPC): value nodes relax, weights follow local errors"),
    "clapp": (Clapp, "self-supervised: CLAPP-s, layer-local contrastive hinge loss with retrodiction"),
    "clapp_pp": (ClappPP, "self-supervised: CLAPP++, lateral context on pooled features (2-D spatial dependence)"),
    "clapp_pp_nospatial": (ClappPPNoSpatial, "self-supervised: CLAPP++ on globally averaged features (ablation)"),
    "clapp_pp_dfb": (ClappPPDFB, "self-supervised: CLAPP++DFB, context from the top layer"),
    "clapp_pp_both": (ClappPPBoth, "self-supervised: CLAPP++both, lateral and top-layer losses"),
    "clapp_dfa": (ClappDFA, "self-supervised: naive CLAPP DFA, top-layer CLAPP++ loss sent down by fixed random crossbars"),
    "clapp_pc": (ClappPC, "self-supervised: naive CLAPP PC, iPC with the top-layer CLAPP++ loss as its output term"),
    "bp_clapp_pp": (BPClappPP, "self-supervised baseline: CLAPP++ loss at the top layer, backpropagated"),
    "bp_infonce": (BPInfoNCE, "self-supervised baseline: InfoNCE on a projection head at the top layer, backpropagated"),
}


# What each rule option means (the --help text of its flag); ranges are checked by the rules.
OPTION_DOCS = {
    "loss": "ce | mse (rule default: ce)",
    "alpha": "dp/dp_adjoint: asymmetric nudging in [0, 1]",
    "beta": "dp/dp_adjoint: nudging strength > 0",
    "schedule": "dp/dp_adjoint: inference schedule fwbw | fw (or fwbwK, fwK)",
    "passes": "dp/dp_adjoint: passes K of the schedule (1-100)",
    "damping": "dp/dp_adjoint: stabilised (proximal) iteration",
    "contrast": "clapp rules: f of the score, hinge | softplus | linear (default hinge)",
    "pool": "clapp rules: feature pooling per layer, auto | global | kernels such as 2-2-1",
    "inference_steps": "pc: inference steps T per batch (default 8)",
    "eta_h": "pc: value-node step size in (0, 1] (default 0.1)",
}


def _plain_type(hint) -> type:
    """float for `float`, int for `int | None`, ..."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    return hint


def option_types() -> dict[str, type]:
    """Every option any rule takes -> its type (float, int, str or bool), in OPTION_DOCS' order."""
    found: dict[str, type] = {}
    for cls, _ in RULES.values():
        hints = typing.get_type_hints(cls.__init__)
        for name in inspect.signature(cls.__init__).parameters:
            if name != "self":
                found[name] = _plain_type(hints[name])
    return {**{name: found[name] for name in OPTION_DOCS if name in found}, **found}


def rule_options(name: str) -> dict:
    """The options a rule takes, with their defaults."""
    sig = inspect.signature(RULES[name][0].__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self"}


def make_rule(name: str, **options) -> Rule:
    """Build a rule; options left as None take the rule's defaults (HiltError on bad input)."""
    if name not in RULES:
        raise HiltError(f"unknown rule {name!r}; allowed: {', '.join(RULES)}")
    allowed = rule_options(name)
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - set(allowed))
    if extra:
        users = [r for r in RULES if set(extra) <= set(rule_options(r))]
        where = f"; it applies to: {', '.join(users)}" if users else ""
        raise HiltError(f"rule {name} takes no --{extra[0].replace('_', '-')}{where}")
    return RULES[name][0](**given)


def reference_of(rule: Rule) -> Rule:
    """What `rule`'s update is compared with (alignment): its own reference(), else bp of its loss."""
    return rule.reference() or Backprop(loss=rule.loss_name)


__all__ = ["OPTION_DOCS", "RULES", "Rule", "make_rule", "option_types", "reference_of", "rule_options"]
