"""Gradient-boosted trees (scikit-learn) on [task features, method features] -> log cost."""

from __future__ import annotations

from sklearn.ensemble import GradientBoostingRegressor

from metainf.selector.base import PairwiseRegressorSelector


class GradientBoostingSelector(PairwiseRegressorSelector):
    """scikit-learn's GradientBoostingRegressor on log cost, seeded."""

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.1, max_depth: int = 3,
                 subsample: float = 1.0, random_state: int = 0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def _make_estimator(self):
        return GradientBoostingRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            max_depth=self.max_depth, subsample=self.subsample, random_state=self.random_state,
        )
