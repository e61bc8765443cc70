"""A small multi-layer perceptron on [task features, method features] -> log cost."""

from __future__ import annotations

from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from metainf.selector.base import PairwiseRegressorSelector


class MLPSelector(PairwiseRegressorSelector):
    """Standardised features, a seeded two-layer MLP with early stopping."""

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (64, 32), alpha: float = 1e-3,
                 max_iter: int = 500, random_state: int = 0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def _make_estimator(self):
        return make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=self.hidden_layer_sizes, alpha=self.alpha,
            max_iter=self.max_iter, early_stopping=True, random_state=self.random_state,
        ))
