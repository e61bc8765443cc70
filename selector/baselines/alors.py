"""ALORS: low-rank factors of the rank-transformed table, predicted from task features."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import TaskMethodSelector
from metainf.selector.baselines.scores import check_n_methods, row_ranks


def rank_scores(C: np.ndarray) -> np.ndarray:
    """Each row's measured methods ranked in (0, 1], best (lowest cost) = 1; NaN elsewhere."""
    ranks = row_ranks(C)  # 1 = lowest cost, ties averaged
    measured = np.isfinite(ranks).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (measured + 1 - ranks) / measured


class AlorsSelector(TaskMethodSelector):
    """Truncated SVD R ~ U S V^T of the rank table, a random forest from features to U.

    Missing entries take their row's mean before the SVD; k = min(n_components, methods,
    tasks). The predicted score is U_hat S V^T (larger is better), returned as its negative.
    """

    def __init__(self, n_components: int = 4, n_estimators: int = 100, random_state: int = 0):
        self.n_components = n_components
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X, C, M=None):
        """Factorise the rank table and learn features -> task factors."""
        X = np.asarray(X, dtype=float)
        R = rank_scores(C)
        row_mean = np.nanmean(np.where(np.isfinite(R).any(axis=1, keepdims=True), R, 0.5), axis=1)
        R = np.where(np.isfinite(R), R, row_mean[:, None])
        U, S, Vt = np.linalg.svd(R, full_matrices=False)
        k = max(1, min(int(self.n_components), R.shape[1], R.shape[0]))
        self.singular_values_ = S[:k]
        self.components_ = Vt[:k]
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1,
        ).fit(X, U[:, :k])
        self.n_methods_ = R.shape[1]
        return self

    def predict_cost(self, X, M=None):
        """Negative reconstructed rank score (lower is better)."""
        check_is_fitted(self, "forest_")
        check_n_methods(self, M, self.n_methods_)
        U_hat = self.forest_.predict(np.asarray(X, dtype=float)).reshape(len(X), -1)
        return -(U_hat * self.singular_values_) @ self.components_
