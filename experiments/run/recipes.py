"""The papers' recipes (experiments/run/recipes.toml): named TrainConfig settings that `train --recipe`
starts from; whatever the user typed overrides them."""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path

from hilt.errors import HiltError
from hilt.experiments.run.config import TrainConfig
from hilt.keyvalue import merged

RECIPES_FILE = Path(__file__).with_name("recipes.toml")
_FIELDS = {f.name for f in fields(TrainConfig)}


def recipes() -> dict[str, dict]:
    """name -> {"description": ..., TrainConfig fields...}, in file order."""
    with open(RECIPES_FILE, "rb") as fh:
        table = tomllib.load(fh)
    for name, recipe in table.items():
        unknown = set(recipe) - _FIELDS - {"description"}
        if unknown:
            raise ValueError(f"{RECIPES_FILE.name} [{name}]: unknown keys {sorted(unknown)}")
    return table


def recipe(name: str) -> dict:
    """One recipe's entry (HiltError naming the recipes for an unknown name)."""
    table = recipes()
    if name not in table:
        raise HiltError(f"unknown recipe {name!r}; allowed: {', '.join(table)} (see `recipes`)")
    return table[name]


def apply_recipe(name: str, typed: dict) -> TrainConfig:
    """The recipe's settings with `typed` on top: the settings the user named, as TrainConfig fields
    or rule options (e.g. alpha), as for `--resume`."""
    settings = {k: v for k, v in recipe(name).items() if k != "description"}
    options = {**settings.pop("rule_options", {}), **{k: v for k, v in typed.items() if k not in _FIELDS}}
    fields_typed = {k: v for k, v in typed.items() if k in _FIELDS}
    for key in ("data_set", "sets"):  # KEY=VALUE lists: a typed key replaces the recipe's, others add
        if key in fields_typed and key in settings:
            fields_typed[key] = merged(settings[key], fields_typed[key])
    return replace(TrainConfig(), **{**settings, **fields_typed}, rule_options=options)

