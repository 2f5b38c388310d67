"""The house (docs/architecture.md): floors that import only the floors below them, no circles, and
devices/ reached from analog/ only by the aihwkit crossbar and the factory that picks a crossbar.
Inside experiments/, four rooms of one kind: studies/ on run/ on measure/, and reference/ apart."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = [{"errors"}, {"seeds", "keyvalue", "userfiles", "shutdown"}, {"devices"}, {"analog"}, {"rules", "data"},
          {"experiments.measure", "experiments.reference"}, {"experiments.run"}, {"experiments.studies"},
          {"api"}, {"cli"}, {"__main__"}]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
EXPERIMENT_ROOMS = ("run", "measure", "studies", "reference")


def floor_of(module: str) -> str:
    """The floor a dotted module belongs to: 'experiments.run.trainer' -> 'experiments.run'."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "experiments" and len(parts) > 1 and parts[1] in EXPERIMENT_ROOMS else parts[0]


def hilt_imports(path: Path) -> set[str]:
    """The hilt modules a file imports (hilt.analog.network -> 'analog.network'; `from hilt import
    api` -> 'api')."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "hilt":
            found |= {a.name for a in node.names}
            continue
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.removeprefix("hilt.") for n in names if n.startswith("hilt.")}
    return found


def modules():
    """(path, dotted package of its floor) of every module of the package, the root's __init__ aside."""
    for path in sorted(ROOT.glob("*.py")):
        if path.name != "__init__.py":
            yield path, path.stem
    for top in ("devices", "analog", "rules", "data", "experiments"):
        for path in sorted((ROOT / top).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield path, floor_of(dotted)


def test_every_module_is_on_a_floor_and_experiments_has_only_its_rooms():
    assert {package for _, package in modules()} - {"experiments"} <= set(FLOOR)
    loose = [p.name for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py"]
    assert loose == []  # every experiment module is in one of the rooms
    assert hilt_imports(ROOT / "experiments" / "__init__.py") == set()


def test_every_import_goes_down_a_floor():
    upward = [f"{path.relative_to(ROOT)} imports hilt.{target}"
              for path, package in modules() for target in hilt_imports(path)
              if floor_of(target) != package and FLOOR[floor_of(target)] >= FLOOR[package]]
    # the one stair up: `python cli.py` run as a script hands over to the start (__main__.py), which
    # installs the signal handlers before it imports cli
    assert upward == ["cli.py imports hilt.__main__"]


def test_reference_stands_apart_from_run_measure_and_studies():
    crossing = [f"{path.relative_to(ROOT)} imports hilt.{target}" for path, package in modules()
                for target in hilt_imports(path)
                if package.startswith("experiments.") and floor_of(target).startswith("experiments.")
                and floor_of(target) != package and "experiments.reference" in (package, floor_of(target))]
    assert crossing == []


def test_the_floor_check_catches_an_upward_import(tmp_path):
    """The checks above can fail: a run module importing a study is reported."""
    bad = tmp_path / "trainer.py"
    bad.write_text("from hilt.experiments.studies.sweep import plan\nfrom hilt import api\n")
    found = {t for t in hilt_imports(bad) if FLOOR[floor_of(t)] >= FLOOR["experiments.run"]}
    assert found == {"experiments.studies.sweep", "api"}


def test_only_the_analog_crossbar_and_the_factory_reach_devices():
    users = {path.name for path, package in modules() if package == "analog"
             and any(t.startswith("devices") for t in hilt_imports(path))}
    assert users == {"analog_crossbar.py", "network.py"}


def test_no_import_circles_inside_a_package():
    graph = {}
    for path, package in modules():
        here = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        inside = {t if t != floor_of(t) or "." in t else f"{t}.__init__" for t in hilt_imports(path)
                  if floor_of(t) == package}
        graph[here] = inside - {here}

    def reaches(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start or (nxt not in seen and reaches(start, nxt, seen | {nxt})):
                return True
        return False

    assert [m for m in graph if reaches(m, m, {m})] == []
