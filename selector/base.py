"""The contract every selector follows, and the pairwise-regression base most share.

A selector is an sklearn-style estimator fitted on a task x method cost table:
``X`` holds one feature row per task, ``C`` the cost of each (task, method) pair
(lower is better, NaN where a method was not measured for a task) and ``M``
one feature row per method (None: the methods are only columns of C).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted


class TaskMethodSelector(BaseEstimator):
    """Base of all selectors: fit on (X, C, M), predict a cost for every method."""

    def fit(self, X: np.ndarray, C: np.ndarray, M: np.ndarray | None = None):
        """Learn from task features X [n, d], costs C [n, m] and method features M [m, e]."""
        raise NotImplementedError

    def predict_cost(self, X: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """Predicted cost [n, m] for every task and method; lower is better."""
        raise NotImplementedError

    def rank(self, X: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """Method indices per task, best first."""
        return np.argsort(self.predict_cost(X, M), axis=1, kind="stable")


def pair_rows(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Every (task, method) pair as one row [task features, method features], task-major."""
    n, m = X.shape[0], M.shape[0]
    return np.hstack([np.repeat(X, m, axis=0), np.tile(M, (n, 1))])


class PairwiseRegressorSelector(TaskMethodSelector):
    """Regress log cost on [task features, method features]; rank methods by prediction.

    Subclasses supply only ``_make_estimator``. Without method features the methods are
    one-hot encoded.
    """

    def _make_estimator(self):
        """A fresh, unfitted regressor with this selector's hyper-parameters."""
        raise NotImplementedError

    def _method_features(self, M: np.ndarray | None, n_methods: int) -> np.ndarray:
        return np.eye(n_methods) if M is None else np.asarray(M, dtype=float)

    def fit(self, X, C, M=None):
        """Fit the regressor on every measured (task, method) pair."""
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        Mf = self._method_features(M, C.shape[1])
        rows = pair_rows(X, Mf)
        y = C.reshape(-1)
        measured = np.isfinite(y) & (y > 0)
        if not measured.any():
            raise ValueError("no measured (task, method) pair to learn from")
        self.estimator_ = self._make_estimator()
        self.estimator_.fit(rows[measured], np.log(y[measured]))
        self.n_methods_ = C.shape[1]
        return self

    def predict_cost(self, X, M=None):
        """Predicted cost of every method for every task, in one vectorised call."""
        check_is_fitted(self, "estimator_")
        X = np.asarray(X, dtype=float)
        Mf = self._method_features(M, self.n_methods_)
        pred = self.estimator_.predict(pair_rows(X, Mf))
        return np.exp(np.asarray(pred, dtype=float)).reshape(X.shape[0], Mf.shape[0])
