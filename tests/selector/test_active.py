"""Which cells to measure next: overlapping candidates first, decided tasks left alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metainf.selector import active

NAN = np.nan


def _grid():
    """Task 0: two candidates within 2 % (intervals overlap); task 1: a clear winner
    (factor 3 apart); task 2: a single candidate."""
    pred = np.log([[1.00, 1.02, 2.0],
                   [1.00, 3.00, 3.5],
                   [1.00, NAN, NAN]])
    cand = np.array([[True, True, True], [True, True, True], [True, False, False]])
    return pred, np.full(pred.shape, NAN), cand


def test_overlapping_candidates_rank_above_a_clearly_decided_task():
    pred, known, cand = _grid()
    scores = active.cell_scores(pred, known, cand, sigma=0.1)
    assert scores[0, 0] > scores[1, 0] and scores[0, 1] > scores[1, 1]
    assert np.nanmax(scores[1]) < 1e-6 < np.nanmin(scores[0, :2])
    assert scores[2, 0] == 0.0 and np.isnan(scores[2, 1:]).all()  # nothing to choose
    order = active.rank_cells(scores)
    assert [tuple(x) for x in order[:2]] == [(0, 0), (0, 1)]  # choice and rival together


def test_a_wider_gap_at_stake_weighs_more_at_equal_odds():
    # The same odds (gap / error) but ten times the error: choosing wrong costs more.
    pred = np.log([[1.0, 1.05], [1.0, 1.05 ** 10]])
    scores = active.cell_scores(pred, np.full(pred.shape, NAN), np.ones((2, 2), bool),
                                sigma=np.array([0.05, 0.5]))
    assert scores[1, 1] > 5 * scores[0, 1]


def test_measured_cells_score_nothing_and_settle_their_task():
    pred, known, cand = _grid()
    known[0, :2] = np.log([1.0, 1.3])     # measured: the choice is clearly 0
    known[0, 2] = math.log(2.0)
    scores = active.cell_scores(pred, known, cand, sigma=0.1)
    assert np.isnan(scores[0]).all()
    conf = active.task_confidence(pred, known, cand, sigma=0.1)
    assert conf[0] == pytest.approx(1.0)


def test_decided_tasks_are_detected_at_the_threshold():
    pred, known, cand = _grid()
    conf = active.task_confidence(pred, known, cand, sigma=0.1)
    assert conf[0] < 0.7 and conf[1] > 0.99 and conf[2] == 1.0
    assert active.decided(pred, known, cand, 0.1, threshold=0.9).tolist() == [False, True, True]
    assert active.decided(pred, known, cand, 0.1, threshold=0.0).all()
    with pytest.raises(ValueError, match="threshold"):
        active.decided(pred, known, cand, 0.1, threshold=1.5)


def test_next_batch_leaves_decided_tasks_out_and_spreads_over_tasks():
    pred = np.log([[1.0, 1.01, 1.02, 1.03], [1.0, 1.02, 1.04, 5.0], [1.0, 9.0, 9.0, 9.0]])
    cand = np.ones(pred.shape, dtype=bool)
    batch = active.next_batch(pred, np.full(pred.shape, NAN), cand, 0.05, size=4,
                              threshold=0.9)
    assert sorted(batch[:, 0].tolist()) == [0, 0, 1, 1]  # task 2 is decided
    assert batch.shape == (4, 2)
    everything = active.next_batch(pred, np.full(pred.shape, NAN), cand, 0.05, size=100)
    assert len(everything) == 12


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        active.cell_scores(np.zeros((2, 3)), np.zeros((2, 2)), np.ones((2, 3), bool), 0.1)
