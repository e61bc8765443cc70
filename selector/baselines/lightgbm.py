"""LightGBM on [task features, method features] -> log cost."""

from __future__ import annotations

from metainf.selector.base import PairwiseRegressorSelector


class LightGBMSelector(PairwiseRegressorSelector):
    """LightGBM's LGBMRegressor on log cost, one thread, deterministic."""

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 10, random_state: int = 0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def _make_estimator(self):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples,
            random_state=self.random_state, n_jobs=1, deterministic=True, verbose=-1,
        )
