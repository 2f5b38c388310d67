"""Where dataset files are: files shipped inside installed packages, and datasets on disk."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from hilt.errors import HiltError


def installed_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HiltError(f"package {package} is not installed; reinstall hilt (pip install -e .)")
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    if not path.is_file():
        raise HiltError(f"{path} is missing from the installed {package}; reinstall it")
    return path


def cache_dir() -> Path:
    """Where generated datasets are kept between runs: $HILT_CACHE, else ~/.cache/hilt."""
    return Path(os.environ.get("HILT_CACHE") or Path.home() / ".cache" / "hilt")
