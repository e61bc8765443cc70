"""Snapping new feature values to the nearest training value."""

from __future__ import annotations

import numpy as np
import pytest

from metainf.selector.snapping import NearestValueSnapper


def test_unseen_values_go_to_the_nearer_seen_value():
    # bandwidth of T4, L4 and H100 seen; an A100 (2.0 TB/s) is nearer the H100
    snap = NearestValueSnapper().fit(np.array([[0.32, 1.0], [0.30, 1.0], [3.35, 1.0]]))
    out = snap.transform(np.array([[2.0, 7.0], [1.0, 7.0], [9.0, 7.0], [-1.0, 7.0],
                                   [np.nan, 7.0], [1.825, 7.0]]))
    np.testing.assert_array_equal(out[:, 0], [3.35, 0.32, 3.35, 0.30, np.nan, 0.32])
    # a column with one seen value is left alone (no tree can split on it)
    np.testing.assert_array_equal(out[:, 1], 7.0)


def test_training_rows_snap_to_themselves_and_the_state_round_trips():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(50, 4))
    Z[:, 2] = rng.integers(0, 3, size=50)
    snap = NearestValueSnapper().fit(Z)
    np.testing.assert_array_equal(snap.transform(Z), Z)
    again = NearestValueSnapper.from_array(snap.to_array())
    new = rng.normal(size=(20, 4)) * 3
    np.testing.assert_array_equal(again.transform(new), snap.transform(new))


def test_a_row_of_the_wrong_width_is_refused():
    snap = NearestValueSnapper().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="rows of 2 features"):
        snap.transform(np.zeros((1, 3)))
