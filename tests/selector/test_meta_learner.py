"""MetaInf's two heads, its searched hyper-parameters and its snapping of unseen values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from metainf.selector.base import pair_rows
from metainf.selector.meta_learner import MetaInfSelector, filled_by_level

FAST = {"n_estimators": 60, "search": False}


def level_table(n=80, seed=0):
    """Task levels spread over three orders of magnitude; the best method turns on x[1].

    Methods differ by a few percent only: m0 wins where x[1] < 0, m2 where x[1] > 0.
    """
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(0, 3, n), rng.uniform(-1, 1, n)])
    level = 10.0 ** X[:, 0]
    side = np.where(X[:, 1] < 0, 1.0, -1.0)
    factors = np.column_stack([1 - 0.03 * side, np.full(n, 1.02), 1 + 0.03 * side])
    C = level[:, None] * factors * rng.uniform(0.998, 1.002, size=(n, 3))
    return X, C


def test_ranking_head_picks_by_few_percent_while_the_level_follows_the_task():
    X, C = level_table()
    Xt, Ct = level_table(n=40, seed=1)
    sel = MetaInfSelector(search=False, seed=0).fit(X, C)
    pred = sel.predict_log_cost(Xt)
    hits = (np.argmin(pred, axis=1) == np.argmin(Ct, axis=1)).mean()
    assert hits >= 0.9
    # the level: the mean predicted log cost of a task is the level head's mean
    heads = sel.estimator_
    rows = heads.snapper.transform(pair_rows(Xt, np.eye(3)))
    level_head = heads.level.predict(rows).reshape(len(Xt), 3)
    np.testing.assert_allclose(pred.mean(axis=1), level_head.mean(axis=1), rtol=1e-5)
    error = pred.mean(axis=1) - np.log(Ct).mean(axis=1)  # levels span ~7 in log
    assert np.abs(error).mean() < 0.2 and np.corrcoef(pred.mean(axis=1),
                                                      np.log(Ct).mean(axis=1))[0, 1] > 0.99
    # the single absolute regressor of the paper ranks worse on the same table
    single = MetaInfSelector(search=False, relative=False, seed=0).fit(X, C)
    single_hits = (np.argmin(single.predict_cost(Xt), axis=1) == np.argmin(Ct, axis=1)).mean()
    assert hits > single_hits


def test_predict_rows_scores_any_pairs_like_the_grid():
    X, C = level_table(n=40)
    sel = MetaInfSelector(**FAST).fit(X, C)
    grid = sel.predict_log_cost(X[:5])
    rows = pair_rows(X[:5], np.eye(3))[[0, 4, 8, 9, 14]]
    np.testing.assert_allclose(sel.predict_rows(rows), grid.reshape(-1)[[0, 4, 8, 9, 14]],
                               rtol=1e-6)
    # the fitted estimator answers pair rows like one regressor of log cost
    np.testing.assert_allclose(sel.estimator_.predict(rows), sel.predict_rows(rows))
    assert sel.estimator_.n_features_in_ == rows.shape[1]
    assert sel.predict_rows(rows[:0]).shape == (0,)


def test_unseen_hardware_falls_with_the_nearest_known_one():
    # x = bandwidth; known: 0.30, 0.32 (method 0 wins) and 3.35 (method 1 wins)
    rng = np.random.default_rng(0)
    bw = np.repeat([0.30, 0.32, 3.35], 20)
    other = rng.normal(size=bw.size)
    X = np.column_stack([bw, other])
    C = np.where((bw > 1)[:, None], [2.0, 1.0], [1.0, 2.0]) * rng.uniform(0.99, 1.01,
                                                                        (bw.size, 2))
    # rounds enough to learn the full departure: the search keeps the most conservative
    # variant among those that tie, which a half-learned departure leaves at the margin
    sel = MetaInfSelector(**{**FAST, "n_estimators": 200}).fit(X, C)
    a100 = np.column_stack([np.full(5, 2.0), rng.normal(size=5)])  # nearer 3.35
    assert (np.argmin(sel.predict_cost(a100), axis=1) == 1).all()
    slow = np.column_stack([np.full(5, 1.0), rng.normal(size=5)])  # nearer 0.32
    assert (np.argmin(sel.predict_cost(slow), axis=1) == 0).all()


def test_search_chooses_on_training_tasks_and_is_cached(tmp_path):
    # the winner depends on an interaction of two features: one-level trees cannot see it
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(90, 2))
    wins_first = (X[:, 0] > 0) == (X[:, 1] > 0)
    C = np.where(wins_first[:, None], [1.0, 1.1], [1.1, 1.0]) * rng.uniform(0.99, 1.01,
                                                                          (90, 2))
    grid = {"max_depth": [1, 3], "n_estimators": [20, 80]}
    sel = MetaInfSelector(param_grid=grid, cache_dir=str(tmp_path)).fit(X, C)
    assert sel.best_params_["max_depth"] == 3
    assert len(sel.search_scores_) == 4
    assert {s["params"]["max_depth"] for s in sel.search_scores_} == {1, 3}
    assert len(list(tmp_path.glob("*.json"))) == 2  # the ranking head's and the level's
    # the same config and data read the cache
    again = MetaInfSelector(param_grid=grid, cache_dir=str(tmp_path)).fit(X, C)
    assert again.best_params_ == sel.best_params_
    assert again.level_params_ == sel.level_params_
    assert len(list(tmp_path.glob("*.json"))) == 2
    np.testing.assert_allclose(again.predict_cost(X), sel.predict_cost(X), rtol=1e-6)
    # other data is another search
    MetaInfSelector(param_grid=grid, cache_dir=str(tmp_path)).fit(X[:60], C[:60])
    assert len(list(tmp_path.glob("*.json"))) == 4


def group_level_table(n_groups=6, per_group=15, seed=0):
    """Each group (a hardware, say) sets the tasks' level by its speed (feature 0); the
    task's size (feature 1) scales it further; method 1 costs 10 % more everywhere."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    speed = np.repeat(rng.uniform(0, 2, n_groups), per_group)
    X = np.column_stack([speed, rng.uniform(0, 1, len(groups))])
    C = np.exp(2 * speed + X[:, 1])[:, None] * np.array([1.0, 1.1])
    return X, C, groups


def test_level_head_is_chosen_by_its_error_on_held_out_groups(tmp_path):
    X, C, groups = group_level_table()
    ranking = {"n_estimators": [20]}
    # one boosting round leaves the level near its mean: the held-out groups show it
    sel = MetaInfSelector(param_grid=ranking, level_grid={"n_estimators": (1, 200)},
                          cache_dir=str(tmp_path)).fit(X, C, groups=groups)
    assert sel.level_params_["n_estimators"] == 200
    assert sel.estimator_.level.get_params()["n_estimators"] == 200
    assert sel.level_params_["max_depth"] == sel.max_depth  # the rest: the constructor's
    error = np.abs(sel.predict_log_cost(X) - np.log(C)).mean()
    assert error < 0.5
    # fixed parameters skip the search and reach the head; the default grid samples
    # features per split
    fixed = MetaInfSelector(param_grid=ranking, cache=False,
                            level_params={"colsample_bynode": 0.3}).fit(X, C, groups=groups)
    assert fixed.estimator_.level.get_params()["colsample_bynode"] == 0.3
    plain = MetaInfSelector(search=False, n_estimators=30).fit(X, C, groups=groups)
    assert plain.level_params_ == {k: getattr(plain, k) for k in (
        "n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
        "min_child_weight")}
    assert set(MetaInfSelector().get_params()) >= {"level_grid", "level_params"}


def test_seeded_deterministic_and_cloneable(tmp_path):
    X, C = level_table(n=40)
    params = {"param_grid": {"max_depth": [2, 4], "n_estimators": [30]}, "cache": False,
              "seed": 3}
    a = MetaInfSelector(**params).fit(X, C)
    b = clone(a).fit(X, C)
    np.testing.assert_array_equal(a.predict_cost(X), b.predict_cost(X))
    assert clone(a).get_params() == a.get_params()
    assert not any(k.endswith("_") for k in vars(clone(a)))


def test_save_and_load_state_round_trip(tmp_path):
    X, C = level_table(n=40)
    sel = MetaInfSelector(**FAST).fit(X, C, np.eye(3) * 2.0)
    files = sel.save_state(tmp_path)
    assert set(files) == {"xgboost.ubj", "xgboost-ranker.ubj", "metainf-state.npz"}
    loaded = MetaInfSelector.load_state(tmp_path, sel.get_params())
    unseen = X[:7] + 0.123
    np.testing.assert_allclose(loaded.predict_cost(unseen, np.eye(3) * 2.0),
                               sel.predict_cost(unseen, np.eye(3) * 2.0), rtol=1e-6)
    single = MetaInfSelector(relative=False, **FAST).fit(X, C)
    assert "xgboost-ranker.ubj" not in single.save_state(tmp_path / "..")


def test_unmeasured_cells_are_filled_on_the_tasks_own_level():
    C = np.array([[1.0, np.nan, 1.0, np.nan],
                  [np.nan, 3.0, np.nan, np.nan],
                  [2.0, 2.0, 2.0, np.nan]])
    level = np.log([[2.0, 4.0, 2.0, 1.0],  # the level head: twice too slow on task 0
                    [1.0, 1.5, 9.0, 1.0],
                    [1.0, 1.0, 1.0, 1.0]])
    filled, n = filled_by_level(C, lambda: level)
    # the gaps of a task with two measured methods are filled; a method nothing
    # measured is not, nor a task with one measured method (nothing anchors its order)
    assert n == 1 and np.isnan(filled[:, 3]).all()
    np.testing.assert_array_equal(filled[~np.isnan(C)], C[~np.isnan(C)])
    np.testing.assert_array_equal(np.isnan(filled[1]), np.isnan(C[1]))
    # a gap keeps the level head's ratios to the task's measured methods, not its level
    assert filled[0, 1] == pytest.approx(2.0)
    dense = np.ones((2, 3))

    def never():
        raise AssertionError("a table without gaps needs no level")

    assert filled_by_level(dense, never)[1] == 0


def test_the_ranking_heads_learn_from_the_filled_table():
    X, C = level_table(n=120)
    rng = np.random.default_rng(5)
    gaps = rng.uniform(size=C.shape) < 0.4
    gaps[np.arange(len(C)), rng.integers(0, 3, len(C))] = False  # each task keeps one
    sparse = np.column_stack([np.where(gaps, np.nan, C), np.full(len(C), np.nan)])
    M = np.eye(4)
    imputed = MetaInfSelector(**FAST).fit(X, sparse, M)
    plain = MetaInfSelector(**FAST, impute=False).fit(X, sparse, M)
    fillable = gaps & ((~gaps).sum(axis=1, keepdims=True) >= 2)
    assert imputed.imputed_ == int(fillable.sum()) > 0 and plain.imputed_ == 0
    assert not np.allclose(imputed.predict_log_cost(X, M), plain.predict_log_cost(X, M))
    # the level (the mean over methods) stays the level head's, fitted on measured cells
    np.testing.assert_allclose(imputed.predict_log_cost(X, M).mean(axis=1),
                               plain.predict_log_cost(X, M).mean(axis=1), rtol=1e-5)
    assert (np.argmin(imputed.predict_cost(X, M), axis=1) != 3).all()
    Xt, Ct = level_table(n=200, seed=100)
    hits = (np.argmin(imputed.predict_cost(Xt, M)[:, :3], axis=1) == np.argmin(Ct, axis=1))
    assert hits.mean() >= 0.9
    # a dense table has nothing to fill: the same model as without
    dense = MetaInfSelector(**FAST).fit(X, C)
    assert dense.imputed_ == 0
    np.testing.assert_array_equal(dense.predict_cost(X),
                                  MetaInfSelector(**FAST, impute=False).fit(X, C).predict_cost(X))


def test_fit_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one row per task"):
        MetaInfSelector(**FAST).fit(np.zeros((3, 2)), np.ones((4, 2)))


def test_rows_of_a_seen_task_go_through_its_ranker_only(monkeypatch):
    from metainf.selector import meta_learner

    X, C = level_table(n=40)
    heads = MetaInfSelector(**FAST).fit(X, C).estimator_
    heads.seen_ranker, heads.prior = heads.level, None  # another booster, raw scores
    snapped = heads.snapper.transform(pair_rows(X[:6], np.eye(3)))
    everywhere = {"ranker": heads.ranker.get_booster().inplace_predict(snapped),
                  "seen": heads.level.get_booster().inplace_predict(snapped)}
    calls = []
    real = meta_learner._predict
    monkeypatch.setattr(meta_learner, "_predict",
                        lambda est, rows, margin=None: calls.append(len(rows)) or
                        real(est, rows, margin))
    for seen in (np.arange(18) % 4 == 0, np.ones(18, bool), np.zeros(18, bool)):
        calls.clear()
        got = heads._ranking(snapped, {}, seen)
        # the same values as predicting every row with both heads, bit for bit
        np.testing.assert_array_equal(
            got, np.where(seen, everywhere["seen"], everywhere["ranker"]).astype(float))
        assert sorted(calls) == sorted(n for n in (int(seen.sum()), int((~seen).sum())) if n)
