"""Learning rules, each written against the crossbar primitives only (rules/base.py: the protocol),
and the registry that turns a name into a rule (rules/registry.py: built-in rules, installed
plug-ins, rules from your own file or module)."""

from __future__ import annotations

from hilt.rules.base import Rule, Signals
from hilt.rules.bp import Backprop
from hilt.rules.registry import BUILTIN, Option, RuleInfo, resolve


def make_rule(spec: str, **options) -> Rule:
    """Build the rule that `spec` names; options left as None take the rule's defaults (HiltError
    on bad input)."""
    return resolve(spec).make(**options)


def reference_of(rule: Rule) -> Rule:
    """What `rule`'s update is compared with (alignment): its own reference(), else bp of its loss."""
    return rule.reference() or Backprop(loss=rule.loss_name)


__all__ = ["BUILTIN", "Option", "Rule", "RuleInfo", "Signals", "make_rule", "reference_of", "resolve"]
