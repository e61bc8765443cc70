"""ARGOSMART: the nearest training task's performance is the prediction."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import TaskMethodSelector
from metainf.selector.baselines.global_best import global_scores
from metainf.selector.baselines.scores import check_n_methods, column_mean, normalised_cost

METRICS = ("euclidean", "cosine")


class ArgosmartSelector(TaskMethodSelector):
    """k nearest training tasks (k = 1 by default) on scaled features; their mean normalised cost.

    A method none of the neighbours measured takes Global Best's score.
    """

    def __init__(self, n_neighbors: int = 1, metric: str = "euclidean"):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, X, C, M=None):
        """Scale the training features and index them."""
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        X = np.asarray(X, dtype=float)
        self.norm_ = normalised_cost(C)
        self.fallback_ = global_scores(C)
        self.scaler_ = StandardScaler().fit(X)
        k = max(1, min(int(self.n_neighbors), X.shape[0]))
        self.index_ = NearestNeighbors(n_neighbors=k, metric=self.metric).fit(
            self.scaler_.transform(X))
        self.n_methods_ = self.norm_.shape[1]
        return self

    def predict_cost(self, X, M=None):
        """Mean normalised cost of each task's nearest training tasks."""
        check_is_fitted(self, "index_")
        check_n_methods(self, M, self.n_methods_)
        Z = self.scaler_.transform(np.asarray(X, dtype=float))
        neighbours = self.index_.kneighbors(Z, return_distance=False)
        return np.vstack([column_mean(self.norm_[idx], fallback=self.fallback_)
                          for idx in neighbours])
