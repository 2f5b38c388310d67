"""hilt: local learning rules on emulated analog crossbars (aihwkit) and on an exact path.

    import hilt
    run = hilt.train(rule="dp_adjoint", device="rram", epochs=5, out=None)
    run.metrics, run.summary, run.network.predict(x)

The Python API is `hilt.api` (train, load_run, compare, sweep, robustness, report, fit_device,
Device, list_rules, list_devices, list_recipes), reachable from here; it is imported on first use, so `import
hilt` stays light (no numpy, torch or aihwkit until a function needs them).

Installed as one package, `hilt` (`hilt.analog`, `hilt.rules`, `hilt.devices`, `hilt.data`,
`hilt.experiments`, `hilt.api`, `hilt.cli`), mapped onto the folders at the repository's root
(pyproject.toml's package-dir): the repository is the package.
"""

_API = ("Comparison", "Device", "Model", "Report", "Run", "compare", "fit_device", "load_run",
        "list_devices", "list_recipes", "list_rules", "report", "robustness", "sweep", "train")
__all__ = [*_API, "HiltError", "Rule", "Signals"]


def __getattr__(name: str):
    if name in _API:
        from hilt import api

        return getattr(api, name)
    if name == "HiltError":
        from hilt.errors import HiltError

        return HiltError
    if name in ("Rule", "Signals"):
        from hilt.rules import base

        return getattr(base, name)
    raise AttributeError(f"module 'hilt' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
