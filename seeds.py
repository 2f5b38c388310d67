"""The random streams a run draws from its --seed, named in one table.

Each use of randomness in a run asks for its stream by name; the numbers below are what those
uses drew before the table existed, kept so that results stay bit-identical. `init` and
`data_order` start from the same seed but are separate generators used for different things
(weights once, then the batch order), as they always were. RHM's data draw and mnist5k's split
are the datasets' own (data/rhm.py, data/mnist5k.py); aihwkit's construction seed is
DeviceSpec.device_seed.
"""

from __future__ import annotations

import numpy as np

from hilt.errors import HiltError

STREAMS = {
    "init": lambda seed: seed,  # the network's initial weights (analog/network.py)
    "data_order": lambda seed: seed,  # batch order and the views of self-supervised pairs (train loop)
    "rule_matrices": lambda seed: (seed, 1),  # a rule's own crossbars: DFA feedback, CLAPP's B (Rule.attach)
    "validation_split": lambda seed: (seed, 2),  # --data-set validation=F (data/registry.py)
    "alignment_batches": lambda seed: seed + 1,  # the fixed batches of --log-alignment
}


def check_seed(seed: int, flag: str = "--seed") -> int:
    """A seed as every command takes it: a whole number >= 0 (HiltError naming `flag` otherwise)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HiltError(f"{flag} must be a whole number >= 0 (got {seed})")
    return int(seed)


def stream(seed: int, name: str) -> np.random.Generator:
    """The random generator of one named stream of a seed (the same (seed, name) always gives the
    same draws)."""
    return np.random.default_rng(STREAMS[name](seed))
