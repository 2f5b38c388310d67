"""Random Hierarchy Model generator: the properties the RHM's definition implies (Cagnetta et al. 2024)."""

import json

import numpy as np
import pytest

from hilt.cli import app
from hilt.data import load_dataset
from hilt.data.rhm import RHMParams, expand, index_to_digits, make_rules, one_hot
from hilt.errors import HiltError
from hilt.rules.probe import raw_input_accuracy
from hilt.experiments.studies.rhm_study import geometric_sizes, p_star
from hilt.experiments.run.config import TrainConfig
from hilt.experiments.run.setup import build
from hilt.experiments.run.trainer import train
from tests.helpers import SMALL_RHM, runner


SMALL = [RHMParams(v=3, n_c=3, m=2, s=2, L=2), RHMParams(v=4, n_c=2, m=2, s=2, L=3), RHMParams(v=3, n_c=2, m=3, s=3, L=2)]


def enumerate_all(p):
    y, digits = index_to_digits(np.arange(p.p_max), p)
    return y, digits, expand(y, digits, make_rules(p), p)


@pytest.mark.parametrize("p", SMALL)
def test_p_max_and_all_inputs_distinct(p):
    assert p.p_max == p.n_c * p.m ** ((p.s**p.L - 1) // (p.s - 1))
    y, _, leaves = enumerate_all(p)
    assert leaves.shape == (p.p_max, p.s**p.L)
    assert len(np.unique(leaves, axis=0)) == p.p_max
    assert np.array_equal(np.bincount(y), np.full(p.n_c, p.p_max // p.n_c))


@pytest.mark.parametrize("p", SMALL)
def test_each_tuple_codes_at_most_one_symbol(p):
    for level, table in enumerate(make_rules(p)):
        used = table[table[:, 0, 0] >= 0]
        tuples = used.reshape(-1, p.s)
        assert len(np.unique(tuples, axis=0)) == len(tuples), f"level {level + 1} is ambiguous"
        assert used.shape[1] == p.m


@pytest.mark.parametrize("p", SMALL)
def test_class_conditional_frequencies_match_the_rules(p):
    """Given the class, the first s leaves' parent tuple chain is uniform over the productions."""
    rules = make_rules(p)
    y, _, leaves = enumerate_all(p)
    for c in range(p.n_c):
        # Level-1 production of class c: every one of its m tuples appears equally often ...
        top = rules[0][c]
        counts = []
        sub = leaves[y == c]
        # ... which we read back by decoding the leaves bottom-up with the inverse grammar.
        inverse = [{tuple(t): sym for sym in range(len(tab)) if tab[sym, 0, 0] >= 0 for t in tab[sym]} for tab in rules]
        level1 = []
        for row in sub:
            syms = list(row)
            for tab in reversed(inverse[1:]):
                syms = [tab[tuple(syms[i : i + p.s])] for i in range(0, len(syms), p.s)]
            level1.append(tuple(syms))
            assert inverse[0][tuple(syms)] == c  # the leaves decode to their class
        for t in top:
            counts.append(sum(1 for s in level1 if s == tuple(t)))
        assert len(set(counts)) == 1 and sum(counts) == len(sub)


def test_one_hot_and_dataset_split_are_disjoint():
    ds = load_dataset("rhm", ["v=4", "n_c=2", "m=2", "L=3", "test_size=60"], seed=3)
    assert ds.input_shape == (4, 8)
    assert np.all(ds.x_train.sum(axis=1) == 1)
    train = {x.tobytes() for x in ds.x_train}
    test = {x.tobytes() for x in ds.x_test}
    assert len(test) == 60 and not train & test
    assert len(train) == len(ds.x_train) == 2 * 2**7 - 60


def test_large_p_max_samples_distinct_without_enumerating():
    p = RHMParams(v=8, n_c=8, m=8, s=2, L=3)  # P_max = 8^8 > 5e6
    ds = load_dataset("rhm", ["L=3", "train_size=3000", "test_size=500"], seed=0)
    assert p.p_max > 5_000_000 and len(ds.x_train) == 3000
    both = np.concatenate([ds.x_train, ds.x_test]).reshape(3500, -1)
    assert len(np.unique(both, axis=0)) == 3500


@pytest.mark.parametrize("opts,msg", [(["q=1"], "unknown rhm option 'q'"), (["v=x"], "expected an integer"),
                                      (["m=9", "v=2"], "needs m\\*n_c <= v\\^s")])
def test_bad_rhm_options(opts, msg):
    with pytest.raises(HiltError, match=msg):
        load_dataset("rhm", opts)


def test_whitening():
    p = RHMParams(v=4, whitening=1)
    x = one_hot(np.array([[0, 1, 2, 3]]), p)
    assert np.allclose(x.sum(axis=1), 1 - 3 / np.sqrt(3))  # one channel at 1, three at -1/sqrt(3)


# The RHM study (rhm-pstar)


def test_rhm_smoke_clapp_pp_probe_beats_the_raw_input():
    cfg = TrainConfig(dataset="rhm", data_set=SMALL_RHM, model="rhm-cnn:64", device="exact", rule="clapp_pp",
                      optimizer="adam", lr=1e-3, batch_size=16, epochs=30, eval_every=30, out="unused")
    setup = build(cfg)
    from hilt.experiments.run.resume import open_run
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary = train(setup, run=open_run(setup, run_dir=tmp))
    raw = raw_input_accuracy(load_dataset("rhm", SMALL_RHM))
    assert summary["status"] == "finished" and len(summary["probe_accuracy_per_layer"]) == 2
    assert summary["test_accuracy"] > raw + 0.15, (summary["test_accuracy"], raw)


def test_p_star_is_the_log_interpolated_first_crossing():
    assert p_star([10, 100, 1000], [0.5, 0.3, 0.05], 0.1) == pytest.approx(10 ** (2 + 0.2 / 0.25))
    assert p_star([10, 100], [0.05, 0.01], 0.1) == 10
    assert p_star([10, 100], [0.5, 0.4], 0.1) is None
    assert geometric_sizes(10, 1000, 2) == [10, 32, 100, 316, 1000]


def test_rhm_pstar_runs_rules_over_sizes_and_seeds(tmp_path):
    result = runner.invoke(app, ["rhm-pstar", "--device", "exact", "--rules", "clapp_pp,bp", "--data-set", "v=4",
                                 "--data-set", "n_c=4", "--data-set", "m=4", "--p-min", "16", "--p-max", "64",
                                 "--per-decade", "4", "--seeds", "1", "--epochs", "2", "--model", "rhm-cnn:16",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(e["rule"], e["P"]) for e in out["errors"]] == [(r, p) for r in ("clapp_pp", "bp") for p in (16, 32, 64)]
    assert all(0 <= e["mean"] <= 1 for e in out["errors"]) and [p["rule"] for p in out["pstar"]] == ["clapp_pp", "bp"]
    study = tmp_path / out["study_dir"].split("/")[-1]
    assert all((study / f).is_file() for f in ("errors.csv", "pstar.csv", "pstar.png", "sweep.csv"))
    again = runner.invoke(app, ["rhm-pstar", "--device", "exact", "--rules", "clapp_pp,bp", "--data-set", "v=4",
                                "--data-set", "n_c=4", "--data-set", "m=4", "--p-min", "16", "--p-max", "64",
                                "--per-decade", "4", "--seeds", "1", "--epochs", "2", "--model", "rhm-cnn:16",
                                "--out", str(tmp_path), "--json"])
    assert json.loads(again.stdout)["errors"] == out["errors"]  # finished points are reused
