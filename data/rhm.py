"""Random Hierarchy Model (Cagnetta et al., PRX 2024), generated as in the authors' code (pcsl-epfl/hierarchy-learning).

A datum is identified by its class y and the production choices of every node of the tree,
listed top to bottom, left to right (the base-m digits of its index mu in [0, P_max)). The
grammar is built level by level from the top: all v^s s-tuples are shuffled (seeded) and m
consecutive unused tuples are given to each symbol that occurs at the level above, so no tuple
codes two symbols.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields

import numpy as np

from hilt.data.dataset import Dataset
from hilt.errors import HiltError, check_memory


@dataclass(frozen=True)
class RHMParams:
    v: int = 8  # vocabulary size per level
    n_c: int = 8  # classes
    m: int = 8  # synonyms per symbol
    s: int = 2  # tuple size
    L: int = 2  # depth
    train_size: int = -1  # -1: everything not in the test set
    test_size: int = -1  # -1: min(P_max / 5, 20000)
    whitening: int = 0
    grammar_seed: int = 0

    @classmethod
    def parse(cls, raw: dict[str, str]) -> "RHMParams":
        """RHMParams from --data-set KEY=VALUE texts (HiltError for an unknown key or a bad value)."""
        names = [f.name for f in fields(cls)]
        values = {}
        for key, text in raw.items():
            if key not in names:
                raise HiltError(f"--data-set: unknown rhm option {key!r}; allowed: {', '.join(names)}")
            try:
                values[key] = int(text)
            except ValueError:
                raise HiltError(f"--data-set {key}={text}: expected an integer")
        p = cls(**values)
        p.validate()
        return p

    def validate(self) -> None:
        """HiltError for parameters that give no valid model (e.g. m > v^(s-1))."""
        if min(self.v, self.n_c) < 2:
            raise HiltError(f"rhm: v and n_c must be >= 2: one symbol or one class leaves nothing to learn (v={self.v}, n_c={self.n_c})")
        if min(self.m, self.L) < 1 or self.s < 2:
            raise HiltError("rhm: m and L must be >= 1 and s >= 2")
        for key in ("train_size", "test_size"):
            if getattr(self, key) == 0 or getattr(self, key) < -1:
                raise HiltError(f"rhm: {key} must be >= 1, or -1 for the default (got {getattr(self, key)})")
        if self.grammar_seed < 0 or self.whitening not in (0, 1):
            raise HiltError("rhm: grammar_seed must be >= 0 and whitening 0 or 1")
        for what, bits in (("s^L positions per datum", self.L * math.log2(self.s)),
                           ("v^s tuples in the grammar", self.s * math.log2(self.v))):
            if bits > 48:
                raise HiltError(f"rhm: {what} is about 2^{bits:.0f}, far more than any memory holds")
        if self.m * max(self.n_c, self.v) > self.v**self.s:
            raise HiltError(f"rhm: needs m*n_c <= v^s and m*v <= v^s (m={self.m}, n_c={self.n_c}, v={self.v}, s={self.s})")

    @property
    def n_nodes(self) -> int:
        """Number of internal nodes = production digits per datum: (s^L - 1)/(s - 1)."""
        return (self.s**self.L - 1) // (self.s - 1)

    @property
    def p_max(self) -> int:
        """The number of distinct inputs the model can generate."""
        return self.n_c * self.m**self.n_nodes

    @property
    def length(self) -> int:
        """The input length s^L (symbols per sample)."""
        return self.s**self.L

    def sizes(self) -> tuple[int, int]:
        """(train, test): the given sizes, or the defaults (test min(P_max / 5, 20000), train the rest
        up to 200000); HiltError when P_max cannot supply them."""
        cap = 10**7  # P_max can be astronomically large: compare it with this instead of computing it
        p_max = self.n_c if self.m == 1 else (
            cap if self.n_nodes * math.log2(self.m) + math.log2(self.n_c) > math.log2(cap) else min(self.p_max, cap))
        test = self.test_size if self.test_size > 0 else min(p_max // 5, 20_000)
        train = self.train_size if self.train_size > 0 else min(p_max - test, 200_000)
        if min(train, test) < 1 or (p_max < cap and train + test > p_max):
            raise HiltError(f"rhm: P_max = {p_max} data cannot give {train} training and {test} test data; "
                            "raise m, n_c or L, or lower train_size/test_size")
        return train, test

    def bytes_needed(self, count: int) -> int:
        """Memory to generate `count` data: one-hot float32 inputs with their temporaries, the trees'
        symbols and production digits, and the grammar's tuple table."""
        return count * (self.length * (5 * self.v + 16) + 16 * self.n_nodes) + 16 * self.s * self.v**self.s


def make_rules(p: RHMParams) -> list[np.ndarray]:
    """rules[l][symbol, choice] = the s-tuple that `symbol` at level l+1 produces (-1 rows unused)."""
    rng = np.random.default_rng(p.grammar_seed)
    rules = []
    above = np.arange(p.n_c)
    for _ in range(p.L):
        tuples = np.array(list(itertools.product(range(p.v), repeat=p.s)), dtype=np.int64)
        chosen = tuples[rng.permutation(len(tuples))[: p.m * len(above)]].reshape(len(above), p.m, p.s)
        table = np.full((max(p.n_c, p.v), p.m, p.s), -1, dtype=np.int64)
        table[above] = chosen
        rules.append(table)
        above = np.unique(chosen)
    return rules


def index_to_digits(mu: np.ndarray, p: RHMParams) -> tuple[np.ndarray, np.ndarray]:
    """Index mu -> (class, production digits most significant first)."""
    mu = np.asarray(mu, dtype=object if p.p_max >= 2**62 else np.int64)
    per_class = p.m**p.n_nodes
    y, rest = mu // per_class, mu % per_class
    digits = np.empty((len(mu), p.n_nodes), dtype=np.int64)
    for j in reversed(range(p.n_nodes)):
        digits[:, j] = (rest % p.m).astype(np.int64)
        rest = rest // p.m
    return y.astype(np.int64), digits


def expand(y: np.ndarray, digits: np.ndarray, rules: list[np.ndarray], p: RHMParams) -> np.ndarray:
    """Leaves (N, s^L) of the trees given by class and production digits."""
    symbols, offset = y[:, None], 0
    for level in range(p.L):
        n = p.s**level
        children = rules[level][symbols, digits[:, offset : offset + n]]  # (N, n, s)
        symbols, offset = children.reshape(len(y), n * p.s), offset + n
    return symbols


def one_hot(leaves: np.ndarray, p: RHMParams) -> np.ndarray:
    """(N, s^L) symbols -> (N, v, s^L) float32, channels = vocabulary."""
    x = (leaves[:, None, :] == np.arange(p.v)[None, :, None]).astype(np.float32)
    if p.whitening:
        c = (p.v - 1) ** -0.5
        x = x * (1 + c) - c
    return x


def sample_digits(p: RHMParams, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct data drawn uniformly without replacement."""
    if count > p.p_max:
        raise HiltError(f"rhm: asked for {count} distinct data but P_max = {p.p_max}")
    if p.p_max < 5_000_000:
        return index_to_digits(rng.permutation(p.p_max)[:count], p)
    # Too many to enumerate: draw twice as many (class, digits) rows, keep distinct ones.
    rows = np.concatenate(
        [rng.integers(0, p.n_c, (2 * count, 1)), rng.integers(0, p.m, (2 * count, p.n_nodes))], axis=1
    )
    rows = np.unique(rows, axis=0)
    rows = rows[rng.permutation(len(rows))[:count]]
    return rows[:, 0], rows[:, 1:]


def load_rhm(p: RHMParams, seed: int = 0) -> Dataset:
    """An RHM dataset: one-hot inputs (N, v, s^L) float32 and their classes, drawn from seed."""
    train, test = p.sizes()
    check_memory(f"rhm with {train + test} data of {p.length} positions x {p.v} symbols", p.bytes_needed(train + test))
    rules = make_rules(p)
    y, digits = sample_digits(p, train + test, np.random.default_rng(seed))
    x = one_hot(expand(y, digits, rules, p), p)
    # The last `test` draws are the test set (disjoint from the training set by construction).
    return Dataset(
        "rhm",
        x[:train],
        y[:train],
        x[train:],
        y[train:],
        n_classes=p.n_c,
        pairing="synonym",
        info={"p_max": p.p_max, **{f.name: getattr(p, f.name) for f in fields(p)}},
    )
