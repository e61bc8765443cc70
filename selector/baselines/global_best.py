"""Global Best (the single best solver, SBS): one ranking of the methods for every task."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import TaskMethodSelector
from metainf.selector.baselines.scores import (
    check_n_methods,
    column_mean,
    normalised_cost,
    row_ranks,
)

CRITERIA = ("mean_normalised", "mean_rank")


def global_scores(C: np.ndarray, criterion: str = "mean_normalised") -> np.ndarray:
    """Score per method (lower is better) over the tasks of C; +inf for a never-measured method.

    ``mean_normalised`` is the mean of cost / task's best cost over the tasks where the
    method was measured; ``mean_rank`` the mean of its 1-based rank within each task.
    """
    if criterion == "mean_normalised":
        return column_mean(normalised_cost(C))
    if criterion == "mean_rank":
        return column_mean(row_ranks(C))
    raise ValueError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")


class GlobalBestSelector(TaskMethodSelector):
    """Rank methods by their mean normalised cost (or mean rank) over the training tasks."""

    def __init__(self, criterion: str = "mean_normalised"):
        self.criterion = criterion

    def fit(self, X, C, M=None):
        """Score each method once on the training cost table; X and M are not used."""
        self.scores_ = global_scores(C, self.criterion)
        self.n_methods_ = self.scores_.shape[0]
        return self

    def predict_cost(self, X, M=None):
        """The same score row for every task."""
        check_is_fitted(self, "scores_")
        check_n_methods(self, M, self.n_methods_)
        return np.tile(self.scores_, (np.asarray(X).shape[0], 1))
