"""Ridge regression on [task features, method features] -> log cost."""

from __future__ import annotations

from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from metainf.selector.base import PairwiseRegressorSelector


class RidgeSelector(PairwiseRegressorSelector):
    """Standardised features, L2-regularised linear regression of log cost."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def _make_estimator(self):
        return make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
