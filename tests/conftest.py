import os

os.environ.setdefault("HILT_XP", "numpy")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hilt.analog import backend  # noqa: E402

backend.use("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
