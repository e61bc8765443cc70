"""Selector metrics on hand-computed tiny cost tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metainf.selector.baselines.global_best import GlobalBestSelector, global_scores
from metainf.selector.evaluation.metrics import (
    closed_gap,
    oracle_outcomes,
    summarise,
    task_outcomes,
)

NAN = np.nan
METHODS = ["m0", "m1", "m2"]
# task 0: m0 best; task 1: m2 unmeasured, m1 best; task 2: m1 within 1 % of m0 (a tie);
# task 3: a single candidate (left out and counted).
C = np.array([
    [1.0, 2.0, 4.0],
    [3.0, 1.0, NAN],
    [2.0, 2.01, 5.0],
    [NAN, 7.0, NAN],
])
PRED = np.array([
    [2.0, 1.0, 3.0],   # picks m1 (cost 2): miss, true best m0 ranked 2nd
    [0.0, 5.0, -9.0],  # m2 is not a candidate: picks m0 (cost 3), m1 ranked 2nd
    [5.0, 1.0, 3.0],   # picks m1 (2.01): a hit within 1 % of m0
    [0.0, 0.0, 0.0],
])


def test_per_task_values_match_hand_computation():
    out = task_outcomes(C, PRED, METHODS)
    assert list(out["selected"]) == ["m1", "m0", "m1", "m1"]
    assert list(out["n_candidates"]) == [3, 2, 3, 1]
    assert list(out["hit"][:3]) == [False, False, True]
    assert list(out["rank_of_best"][:3]) == [2, 2, 1]
    np.testing.assert_allclose(out["regret"][:3], [2.0, 3.0, 1.005])
    np.testing.assert_allclose(out["accel_ratio"][:3], [7 / 3 / 2, 2 / 3, 9.01 / 3 / 2.01])
    np.testing.assert_allclose(out["oracle_accel_ratio"][:3], [7 / 3, 2.0, 9.01 / 3 / 2.0])


def test_pooled_metrics_leave_out_single_candidate_tasks():
    s = summarise(task_outcomes(C, PRED, METHODS))
    assert s["n_tasks"] == 3 and s["n_single"] == 1
    assert s["accuracy"] == pytest.approx(1 / 3)
    assert s["mean_rank"] == pytest.approx(5 / 3)
    assert s["regret"] == pytest.approx((2 + 3 + 1.005) / 3)
    # true labels m0, m1, m1 (a hit keeps its own label); predicted m1, m0, m1:
    # F1(m0) = 0, F1(m1) = 0.5 -> macro 0.25
    assert s["f1_macro"] == pytest.approx(0.25)


def test_unmeasured_pick_gets_the_worst_cost_when_not_restricted():
    out = task_outcomes(C, PRED, METHODS, restrict_to_candidates=False)
    row = out.iloc[1]
    assert row["selected"] == "m2" and not row["selected_measured"]
    assert row["cost_selected"] == 3.0 and row["regret"] == 3.0 and not row["hit"]
    # the restricted ranking still places the true best second
    assert row["rank_of_best"] == 2


def test_a_tied_pick_scores_the_expected_outcome_whatever_the_column_order():
    # two tasks, three methods; the prediction cannot tell m0 from m1 (m2 predicted worse)
    cost = np.array([[1.0, 2.0, 4.0], [3.0, 1.0, 2.0]])
    pred = np.array([[1.0, 1.0, 2.0], [5.0, 5.0, 6.0]])
    out = task_outcomes(cost, pred, METHODS, sbs_scores=np.array([1.0, 2.0, 3.0]))
    assert list(out["n_tied"]) == [2, 2]
    np.testing.assert_allclose(out["hit"], [0.5, 0.5])
    np.testing.assert_allclose(out["regret"], [1.5, 2.0])
    np.testing.assert_allclose(out["cost_selected"], [1.5, 2.0])
    flipped = task_outcomes(cost[:, ::-1], pred[:, ::-1], METHODS[::-1],
                            sbs_scores=np.array([3.0, 2.0, 1.0]))
    for column in ("hit", "regret", "hit_noise", "regret_noise", "hit_available",
                   "regret_available", "cost_selected"):
        np.testing.assert_allclose(flipped[column], out[column], err_msg=column)
    assert summarise(out)["accuracy"] == pytest.approx(0.5)
    assert summarise(out)["n_tied"] == 2
    # a prediction that separates them is scored as before, on its own pick
    single = task_outcomes(cost, pred + np.array([0.0, 1e-6, 0.0]), METHODS)
    assert list(single["n_tied"]) == [1, 1] and list(single["hit"]) == [1.0, 0.0]


def test_closed_gap_on_total_cost():
    out = task_outcomes(C, PRED, METHODS, sbs_scores=np.array([1.0, 2.0, 3.0]))
    # SBS picks m0 wherever measured: 1 + 3 + 2 = 6; VBS 1 + 1 + 2 = 4; selector 7.01
    assert closed_gap(out) == pytest.approx((6 - 7.01) / (6 - 4))


def test_closed_gap_is_nan_when_sbs_equals_vbs_and_left_out_of_the_mean():
    same = np.array([[1.0, 2.0], [1.0, 3.0]])
    pred = np.array([[2.0, 1.0], [2.0, 1.0]])
    out = task_outcomes(same, pred, ["a", "b"], sbs_scores=np.array([1.0, 2.0]))
    assert np.isnan(closed_gap(out))
    other = task_outcomes(C, PRED, METHODS, sbs_scores=np.array([1.0, 2.0, 3.0]))
    both = pd.concat([out.assign(fold="f0"), other.assign(fold="f1")], ignore_index=True)
    assert summarise(both, fold_col="fold")["closed_gap"] == pytest.approx(-0.505)


def test_global_best_closes_no_gap_on_its_own_sbs():
    rng = np.random.default_rng(0)
    train = rng.uniform(1, 3, size=(30, 4))
    test = rng.uniform(1, 3, size=(10, 4))
    gb = GlobalBestSelector().fit(np.zeros((30, 1)), train)
    out = task_outcomes(test, gb.predict_cost(np.zeros((10, 1))), list("abcd"),
                        sbs_scores=global_scores(train))
    assert closed_gap(out) == 0.0


def test_oracle_is_the_ceiling():
    out = task_outcomes(C, PRED, METHODS, sbs_scores=np.array([1.0, 2.0, 3.0]))
    o = summarise(oracle_outcomes(out))
    s = summarise(out)
    assert o["accuracy"] == 1.0 and o["regret"] == 1.0 and o["mean_rank"] == 1.0
    assert o["f1_macro"] == 1.0 and o["closed_gap"] == pytest.approx(1.0)
    assert o["accel_ratio"] == pytest.approx(s["oracle_accel_ratio"])
    assert o["accel_ratio"] > s["accel_ratio"]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="prediction shape"):
        task_outcomes(C, PRED[:, :2], METHODS)
