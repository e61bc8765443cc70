"""ISAC: cluster the tasks on their features, take the cluster's mean normalised cost."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import TaskMethodSelector
from metainf.selector.baselines.global_best import global_scores
from metainf.selector.baselines.scores import check_n_methods, column_mean, normalised_cost


class ISACSelector(TaskMethodSelector):
    """k-means over scaled task features; a test task takes its cluster's per-method score.

    k is clamped to the number of distinct training tasks; a cluster with no measurement of
    a method falls back to Global Best's score for it. (The original ISAC uses g-means.)
    """

    def __init__(self, n_clusters: int = 5, random_state: int = 0):
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit(self, X, C, M=None):
        """Scale X, cluster the training tasks, average normalised cost per cluster."""
        X = np.asarray(X, dtype=float)
        norm = normalised_cost(C)
        self.fallback_ = global_scores(C)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        distinct = np.unique(Z, axis=0).shape[0]
        k = max(1, min(int(self.n_clusters), distinct))
        self.kmeans_ = KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit(Z)
        self.cluster_scores_ = np.vstack([
            column_mean(norm[self.kmeans_.labels_ == c], fallback=self.fallback_)
            for c in range(k)
        ])
        self.n_methods_ = norm.shape[1]
        return self

    def predict_cost(self, X, M=None):
        """Each task's cluster score row."""
        check_is_fitted(self, "kmeans_")
        check_n_methods(self, M, self.n_methods_)
        labels = self.kmeans_.predict(self.scaler_.transform(np.asarray(X, dtype=float)))
        return self.cluster_scores_[labels]
