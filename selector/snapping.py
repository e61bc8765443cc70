"""Snap features to the nearest value seen in training, so tree splits act at midpoints.

Histogram tree learners (XGBoost ``hist``) split a feature at a value seen in training:
``x < 3.35`` separates {0.30, 0.32} from {3.35}, and an unseen GPU with 2.0 TB/s falls
with the slow ones although it is nearer the fast one. Snapping each feature of a new
row to the nearest training value first makes every such split act at the midpoint
between the two seen values, as an exact learner's split does, at no cost to the rows
seen in training (they snap to themselves). Beyond the seen range a value snaps to the
nearest end, which is where any tree already sends it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


class NearestValueSnapper(TransformerMixin, BaseEstimator):
    """Replace each feature value by the nearest value that feature took in training."""

    def fit(self, Z: np.ndarray, y=None) -> NearestValueSnapper:
        """Record the sorted distinct finite values of every column of ``Z``."""
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2:
            raise ValueError(f"expected a 2-D array of rows, got shape {Z.shape}")
        self.values_ = [np.unique(col[np.isfinite(col)]) for col in Z.T]
        self.n_features_in_ = Z.shape[1]
        return self

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """Snapped copy of ``Z``; NaN stays NaN (a missing value for the trees)."""
        check_is_fitted(self, "values_")
        Z = np.array(Z, dtype=float, copy=True)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of {self.n_features_in_} features, got shape "
                             f"{Z.shape}")
        for j, seen in enumerate(self.values_):
            if seen.size < 2:
                continue
            x = Z[:, j]
            hi = np.clip(np.searchsorted(seen, x), 1, seen.size - 1)
            lower, upper = seen[hi - 1], seen[hi]
            snapped = np.where(x - lower <= upper - x, lower, upper)
            Z[:, j] = np.where(np.isfinite(x), snapped, x)
        return Z

    def to_array(self) -> np.ndarray:
        """The seen values as one NaN-padded array [n_features, max distinct] (for saving)."""
        check_is_fitted(self, "values_")
        width = max((v.size for v in self.values_), default=0)
        out = np.full((len(self.values_), width), np.nan)
        for j, v in enumerate(self.values_):
            out[j, :v.size] = v
        return out

    @classmethod
    def from_array(cls, array: np.ndarray) -> NearestValueSnapper:
        """Inverse of :meth:`to_array`."""
        array = np.asarray(array, dtype=float)
        snapper = cls()
        snapper.values_ = [row[np.isfinite(row)] for row in array]
        snapper.n_features_in_ = array.shape[0]
        return snapper
