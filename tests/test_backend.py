"""Which array library a run gets: CuPy when a GPU is usable (faked here; the machine has none),
NumPy for analog runs and otherwise."""

import numpy as np
import pytest

from hilt.analog import backend
from hilt.errors import HiltError


@pytest.fixture
def fake_gpu(monkeypatch):
    """A stand-in 'cupy' module, as if CuPy had found a GPU."""
    import types

    fake = types.ModuleType("cupy")
    monkeypatch.setattr(backend, "_cupy_with_gpu", lambda: fake)
    yield fake
    backend.use("numpy")


def test_exact_run_selects_cupy_when_a_gpu_is_usable(fake_gpu, monkeypatch):
    monkeypatch.delenv("HILT_XP", raising=False)
    assert backend.select(analog=False) is fake_gpu
    assert backend.select(analog=True) is np  # aihwkit's tiles are CPU tiles
    monkeypatch.setenv("HILT_XP", "numpy")
    assert backend.select(analog=False) is np
    monkeypatch.setenv("HILT_XP", "cupy")
    assert backend.select(analog=False) is fake_gpu


def test_without_a_gpu_auto_is_numpy_and_cupy_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_with_gpu", lambda: None)
    monkeypatch.delenv("HILT_XP", raising=False)
    try:
        assert backend.select(analog=False) is np
        monkeypatch.setenv("HILT_XP", "cupy")
        with pytest.raises(HiltError, match="HILT_XP=cupy: CuPy or a CUDA GPU is not available"):
            backend.select(analog=False)
    finally:
        backend.use("numpy")


@pytest.mark.parametrize("devices,expected", [(2, True), (0, False), (RuntimeError("no driver"), False), (None, False)])
def test_cupy_probe_needs_cupy_and_a_device(monkeypatch, devices, expected):
    """The probe returns CuPy only when it imports and counts a device (a stand-in CuPy here: the
    real one is checked on a GPU machine by bench/gpu_check.sh); None without CuPy, device or driver."""
    import sys
    import types

    if devices is None:
        monkeypatch.setitem(sys.modules, "cupy", None)  # not installed: import raises ImportError
    else:
        def count():
            if isinstance(devices, Exception):
                raise devices
            return devices

        fake = types.ModuleType("cupy")
        fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
        monkeypatch.setitem(sys.modules, "cupy", fake)
    found = backend._cupy_with_gpu()
    assert (found is sys.modules["cupy"]) if expected else found is None
