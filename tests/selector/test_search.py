"""Inner cross-validation search: grid, splits, scoring, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from metainf.selector.search import (
    SearchCache,
    cache_key,
    grid_points,
    selection_regret,
    task_splits,
)


def test_grid_points_are_every_combination_in_name_order():
    points = grid_points({"b": [1, 2], "a": ["x"]})
    assert points == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    with pytest.raises(ValueError, match="param_grid\\['a'\\]"):
        grid_points({"a": []})


def test_task_splits_cover_every_task_once_and_are_seeded():
    splits = task_splits(10, 3, seed=0)
    assert len(splits) == 3
    held = np.sort(np.concatenate([val for _, val in splits]))
    np.testing.assert_array_equal(held, np.arange(10))
    for train, val in splits:
        assert not set(train) & set(val) and len(train) + len(val) == 10
    again = task_splits(10, 3, seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again, strict=True))
    assert len(task_splits(2, 5, seed=0)) == 2  # clamped to the tasks


def test_selection_regret_by_hand():
    C = np.array([[1.0, 2.0, 4.0],      # picks m1: regret 2
                  [3.0, np.nan, 1.5],   # picks m0 (m1 unmeasured is skipped): regret 2
                  [5.0, np.nan, np.nan]])  # one candidate: left out
    pred = np.array([[9.0, 0.0, 5.0],
                     [0.0, -1.0, 1.0],
                     [0.0, 0.0, 0.0]])
    assert selection_regret(C, pred) == pytest.approx(2.0)


def test_cache_key_follows_config_and_data(tmp_path):
    X = np.zeros((3, 2))
    a = cache_key({"grid": {"max_depth": [4]}}, X)
    assert a == cache_key({"grid": {"max_depth": [4]}}, X.copy())
    assert a != cache_key({"grid": {"max_depth": [6]}}, X)
    assert a != cache_key({"grid": {"max_depth": [4]}}, X + 1)
    cache = SearchCache(tmp_path)
    assert cache.get(a) is None
    cache.put(a, {"params": {"max_depth": 4}, "scores": []})
    assert cache.get(a) == {"params": {"max_depth": 4}, "scores": []}
    next(tmp_path.glob("*.json")).write_text("{not json")
    assert cache.get(a) is None  # a broken entry is a miss, not a crash
    assert len(a) == 64 and int(a, 16) >= 0  # a hex digest, safe as a file name
