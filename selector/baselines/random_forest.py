"""Random forest on [task features, method features] -> log cost."""

from __future__ import annotations

from sklearn.ensemble import RandomForestRegressor

from metainf.selector.base import PairwiseRegressorSelector


class RandomForestSelector(PairwiseRegressorSelector):
    """A seeded random forest regressing log cost, one thread."""

    def __init__(self, n_estimators: int = 100, max_features: float | str = 0.5,
                 min_samples_leaf: int = 1, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _make_estimator(self):
        return RandomForestRegressor(
            n_estimators=self.n_estimators, max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state, n_jobs=1,
        )
