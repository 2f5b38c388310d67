"""The array namespace `xp` (CuPy on a GPU, NumPy otherwise) and zero-copy torch conversions.

Everything in hilt computes in float32. `xp()` is resolved once per process and can be forced
with the environment variable HILT_XP=numpy|cupy (honoured by `train` through `select`) or with
`use("numpy")` before anything is built.
"""

from __future__ import annotations

import os
import types

import numpy as np

from hilt.errors import HiltError

DTYPE = np.float32
_XP: types.ModuleType | None = None


def _cupy_with_gpu() -> types.ModuleType | None:
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # cupy installed but no driver / no device
        return None
    return None


def use(name: str) -> types.ModuleType:
    """Select the array namespace: 'numpy', 'cupy', or 'auto' (CuPy if a GPU is usable)."""
    global _XP
    if name == "numpy":
        _XP = np
    elif name == "cupy":
        cp = _cupy_with_gpu()
        if cp is None:
            raise RuntimeError("CuPy or a CUDA GPU is not available")
        _XP = cp
    elif name == "auto":
        _XP = _cupy_with_gpu() or np
    else:
        raise ValueError(f"unknown array backend {name!r}; allowed: numpy, cupy, auto")
    return _XP


def check_environment() -> None:
    """HILT_XP names a backend this machine has (HiltError otherwise): every command checks it
    first, also those that would not use it."""
    wanted = os.environ.get("HILT_XP", "auto")
    if wanted not in ("numpy", "cupy", "auto"):
        raise HiltError(f"HILT_XP={wanted}: unknown array backend; allowed: numpy, cupy, auto")
    if wanted == "cupy" and _cupy_with_gpu() is None:
        raise HiltError("HILT_XP=cupy: CuPy or a CUDA GPU is not available; unset HILT_XP or set it to numpy")


def select(analog: bool) -> types.ModuleType:
    """The namespace of a run: HILT_XP if set, else CuPy when a GPU is usable. aihwkit's PyPI tiles
    are CPU tiles, so analog runs stay in NumPy (no host<->GPU copy per read)."""
    wanted = os.environ.get("HILT_XP", "auto")
    if analog and wanted == "cupy":
        raise HiltError("HILT_XP=cupy: analog devices run on aihwkit's CPU tiles with NumPy; CuPy is for --device exact")
    try:
        return use("numpy" if analog else wanted)
    except (ValueError, RuntimeError) as err:
        raise HiltError(f"HILT_XP={wanted}: {err}") from None


def xp() -> types.ModuleType:
    """The current array namespace (resolved on first use)."""
    if _XP is None:
        use(os.environ.get("HILT_XP", "auto"))
    return _XP


def asarray(a) -> "np.ndarray":
    """A float32, C-contiguous array of the current namespace (`a` itself when it is one already:
    the common case on every read, so it is checked first)."""
    namespace = xp()
    if type(a) is (np.ndarray if namespace is np else namespace.ndarray) and a.dtype == DTYPE and a.flags.c_contiguous:
        return a
    return namespace.ascontiguousarray(namespace.asarray(a, dtype=DTYPE))


def to_numpy(a) -> np.ndarray:
    """Host copy for metrics and files (no-op for NumPy arrays)."""
    if isinstance(a, np.ndarray):
        return a
    return a.get() if hasattr(a, "get") else np.asarray(a)


# One BLAS thread pool per process on the CPU: once torch's kernels have run here (the exact
# path's convolutions and pooling), the exact path's matrix products go through torch too. Two
# pools (NumPy's OpenBLAS and torch's OpenMP) spinning on the same cores slowed a 32 x 1024 x 1024
# product interleaved with convolutions from 0.6 ms to 8-11 ms and the convolutions by 40 %;
# through torch it took 1.1 ms (measured on the 2-core development machine). An MLP that never
# calls torch keeps NumPy's products, the faster ones alone.
_torch_in_use = [False]


def matmul(a, b):
    """a @ b for arrays of the current namespace, on the thread pool already in use (see above)."""
    if _torch_in_use[0] and type(a) is np.ndarray:
        import torch

        return (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    return a @ b


def from_torch(t):
    """Zero-copy view of a torch tensor as an array of the current namespace (NumPy on the CPU,
    CuPy through DLPack on a GPU)."""
    return t.numpy() if t.device.type == "cpu" else xp().from_dlpack(t)


def to_torch(a):
    """Zero-copy view as a torch tensor: torch.from_numpy on the CPU, DLPack for CuPy."""
    import torch

    if isinstance(a, np.ndarray):
        _torch_in_use[0] = True
        return torch.from_numpy(np.ascontiguousarray(a, dtype=DTYPE))
    return torch.from_dlpack(xp().ascontiguousarray(a, dtype=DTYPE))

