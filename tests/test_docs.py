"""The repository stands on its own and documents itself: a short front page, no reference to a
document it lacks, a docstring on every public function, class and method (the API reference is
built from them by `mkdocs build --strict` in CI)."""

import importlib
import inspect
import pkgutil
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def test_nothing_cites_a_document_the_repository_lacks():
    pattern = re.compile("|".join(["SPEC" + "S", "DESIG" + "N.md", "AIHWKIT_" + "NOTES", r"\.\./" + "shared", "seeds" + "/0"]))
    found = [f"{p.relative_to(ROOT)}: {line.strip()[:80]}" for p in tracked_files()
             if p.suffix in (".py", ".md", ".toml", ".yml", ".txt", ".json")
             for line in p.read_text(errors="replace").splitlines() if pattern.search(line)]
    assert found == []


def test_the_front_page_is_short_and_points_to_the_manual():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for must in ("python cli.py train --device rram --rule dp_adjoint", "python -m pytest", "import hilt",
                 "mkdocs serve", "results/README.md"):
        assert must in readme, must


def public_objects():
    modules = ["hilt.api", "hilt.cli", "hilt.errors", "hilt.seeds", "hilt.keyvalue"]
    for package in ("analog", "devices", "rules", "data", "experiments"):
        root = importlib.import_module(f"hilt.{package}")
        modules += [m.name for m in pkgutil.walk_packages(root.__path__, f"hilt.{package}.")]
    for name in modules:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{name}.{attr}", obj
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if not member.startswith("_") and (inspect.isfunction(value) or isinstance(value, property)):
                        yield f"{name}.{attr}.{member}", value if isinstance(value, property) else getattr(obj, member)


def test_every_public_function_class_and_method_has_a_docstring():
    """Methods may inherit theirs from the class they override (inspect.getdoc)."""
    missing = [name for name, obj in public_objects() if not (inspect.getdoc(obj) or "").strip()]
    assert missing == []
