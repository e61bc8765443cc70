"""Protocols split tasks into seeded, disjoint training and test folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metainf.selector.evaluation.protocols import ProtocolError, make_folds
from metainf.selector.table import PerfTable, TableMapping

MAPPING = TableMapping(("model", "hardware", "workload"), "method", "runtime_s", True,
                       "hardware", "model")


def _table(n_hw=3, n_models=2, n_wl=10, single=()) -> PerfTable:
    rows = []
    for h in range(n_hw):
        for m in range(n_models):
            for w in range(n_wl):
                for k, method in enumerate(("none", "cb", "pc")):
                    if (h, m, w) in single and k > 0:
                        continue
                    rows.append({"model": f"M{m}", "hardware": f"H{h}", "workload": f"w{w}",
                                 "method": method, "runtime_s": 1.0 + k + h})
    return PerfTable.from_frame(pd.DataFrame(rows), MAPPING)


def _check_partition(table, folds):
    for fold in folds:
        assert np.intersect1d(fold.train_idx, fold.test_idx).size == 0
        assert len(fold.train_idx) > 0 and len(fold.test_idx) > 0
        assert np.all(np.diff(fold.test_idx) > 0)


def test_random_spreads_n_tasks_over_disjoint_splits_and_is_seeded():
    table = _table(single={(0, 0, 0), (1, 1, 3)})
    folds = make_folds(table, "random", n_test=40, n_splits=5, seed=1)
    _check_partition(table, folds)
    assert [f.name for f in folds] == [f"split{i}" for i in range(5)]
    test = np.concatenate([f.test_idx for f in folds])
    assert test.size == 40 and np.unique(test).size == 40
    # single-candidate tasks are never drawn as test tasks
    n_cand = np.isfinite(table.cost).sum(axis=1)
    assert (n_cand[test] >= 2).all()
    # every split trains on all other tasks of the table
    assert all(len(f.train_idx) + len(f.test_idx) == table.n_tasks for f in folds)
    again = make_folds(table, "random", n_test=40, n_splits=5, seed=1)
    other = make_folds(table, "random", n_test=40, n_splits=5, seed=2)
    same = [np.array_equal(a.test_idx, b.test_idx) for a, b in zip(folds, again, strict=True)]
    moved = [np.array_equal(a.test_idx, b.test_idx) for a, b in zip(folds, other, strict=True)]
    assert all(same)
    assert not all(moved)


def test_random_caps_n_by_the_table():
    table = _table()
    folds = make_folds(table, "random", n_test=1000, n_splits=5)
    assert sum(len(f.test_idx) for f in folds) == table.n_tasks == 60


def test_loho_and_lomo_leave_one_value_out():
    table = _table()
    loho = make_folds(table, "loho")
    assert [f.name for f in loho] == ["hardware=H0", "hardware=H1", "hardware=H2"]
    _check_partition(table, loho)
    for fold in loho:
        held = fold.name.split("=")[1]
        assert set(table.tasks["hardware"].iloc[fold.test_idx]) == {held}
        assert held not in set(table.tasks["hardware"].iloc[fold.train_idx])
    lomo = make_folds(table, "lomo")
    assert len(lomo) == 2
    assert sorted(np.concatenate([f.test_idx for f in lomo])) == list(range(table.n_tasks))


def test_kfold_partitions_every_task_once():
    table = _table()
    folds = make_folds(table, "kfold", k=5, seed=0)
    _check_partition(table, folds)
    test = np.concatenate([f.test_idx for f in folds])
    assert sorted(test) == list(range(table.n_tasks))


def test_holdout_any_column():
    table = _table()
    folds = make_folds(table, "holdout", holdout_col="workload")
    assert len(folds) == 10
    with pytest.raises(ProtocolError, match="task columns"):
        make_folds(table, "holdout", holdout_col="nope")


def test_protocol_errors_say_what_to_fix():
    no_hw = TableMapping(("model", "workload"), "method", "runtime_s", True)
    df = pd.DataFrame({"model": ["a", "b"], "workload": ["w", "w"], "method": ["x", "x"],
                       "runtime_s": [1.0, 2.0]})
    table = PerfTable.from_frame(df, no_hw)
    with pytest.raises(ProtocolError, match="--hardware-col"):
        make_folds(table, "loho")
    with pytest.raises(ProtocolError, match="known: random, loho, lomo, kfold"):
        make_folds(table, "bogus")
