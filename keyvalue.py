"""KEY=VALUE items, the form of --set, --data-set and --grid: one parser and one merge for all."""

from __future__ import annotations

from hilt.errors import HiltError


def parse_items(flag: str, items: list[str], expected: str = "KEY=VALUE") -> dict[str, str]:
    """['k=v', ...] -> {'k': 'v'} in order, both stripped; HiltError naming `flag` for an item
    without '=' or a key, and for a key given twice."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HiltError(f"{flag} {item!r}: expected {expected}")
        if key in parsed:
            raise HiltError(f"{flag} {key} is given twice; give each key once")
        parsed[key] = value.strip()
    return parsed


def key_of(item: str) -> str:
    """The KEY of a 'KEY=VALUE' item."""
    return item.partition("=")[0].strip()


def merged(base: list[str], changes: list[str]) -> list[str]:
    """`base` items with every key that `changes` names replaced by the change (appended)."""
    keys = {key_of(item) for item in changes}
    return [item for item in base if key_of(item) not in keys] + list(changes)
