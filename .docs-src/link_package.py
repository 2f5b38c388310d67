"""MkDocs hook (mkdocs.yml `hooks`): mkdocstrings reads hilt's sources statically, but the package
is the repository's root (pyproject.toml's package-dir), whose `.venv` a scan of the root would
walk too. Before a build, `.docs-src/hilt/` gets one link per top-level module and subpackage of
the package, as pyproject.toml names them, and mkdocstrings searches `.docs-src`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def on_startup(command, dirty) -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    names = sorted({p.split(".")[1] for p in packages if p.count(".") >= 1} | {p.name for p in ROOT.glob("*.py")})
    target = ROOT / ".docs-src" / "hilt"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(Path("..") / ".." / name)
