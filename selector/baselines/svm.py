"""Support-vector regression on [task features, method features] -> log cost."""

from __future__ import annotations

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from metainf.selector.base import PairwiseRegressorSelector


class SVMSelector(PairwiseRegressorSelector):
    """Standardised features, RBF-kernel SVR of log cost."""

    def __init__(self, C: float = 10.0, epsilon: float = 0.05, gamma: str | float = "scale"):
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma

    def _make_estimator(self):
        return make_pipeline(StandardScaler(), SVR(C=self.C, epsilon=self.epsilon,
                                                   gamma=self.gamma))
