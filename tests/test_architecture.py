"""The house (ARCHITECTURE.md): floors that import only the floors below them, no circles, and
devices/ reached from analog/ only by the aihwkit crossbar and the factory that picks a crossbar."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = [{"errors"}, {"seeds", "keyvalue"}, {"devices"}, {"analog"}, {"rules", "data"}, {"experiments"}, {"api"}, {"cli"}]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}


def hilt_imports(path: Path) -> set[str]:
    """The hilt modules a file imports (hilt.analog.network -> 'analog.network')."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.removeprefix("hilt.") for n in names if n.startswith("hilt.")}
    return found


def modules():
    for path in sorted(ROOT.glob("*.py")) + sorted(p for f in FLOORS for n in f if (ROOT / n).is_dir() for p in (ROOT / n).glob("*.py")):
        if path.name == "__init__.py" and path.parent == ROOT:
            continue
        package = path.stem if path.parent == ROOT else path.parent.name
        yield path, package


def test_every_import_goes_down_a_floor():
    upward = [f"{path.relative_to(ROOT)} imports hilt.{target}"
              for path, package in modules() for target in hilt_imports(path)
              if target.split(".")[0] != package and FLOOR[target.split(".")[0]] >= FLOOR[package]]
    assert upward == []


def test_only_the_analog_crossbar_and_the_factory_reach_devices():
    users = {path.name for path, package in modules() if package == "analog"
             and any(t.startswith("devices") for t in hilt_imports(path))}
    assert users == {"analog_crossbar.py", "network.py"}


def test_no_import_circles_inside_a_package():
    graph = {}
    for path, package in modules():
        here = f"{package}.{path.stem}" if path.parent != ROOT else package
        inside = {t if "." in t else f"{t}.__init__" for t in hilt_imports(path) if t.split(".")[0] == package}
        graph[here] = inside - {here}

    def reaches(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start or (nxt not in seen and reaches(start, nxt, seen | {nxt})):
                return True
        return False

    assert [m for m in graph if reaches(m, m, {m})] == []
