"""MetaInf: an XGBoost regressor of log cost on [task features, method features]."""

from __future__ import annotations

from metainf.selector.base import PairwiseRegressorSelector


class MetaInfSelector(PairwiseRegressorSelector):
    """The paper's meta-learner: f(E_data, E_model, E_hw, E_method) -> log cost, by XGBoost.

    Fit on task features X (workload, model and hardware embeddings plus facts) and
    method features M; deterministic for a given ``seed`` and data. ``n_jobs`` defaults
    to 1: with torch loaded in the same process (the sentence-transformer), XGBoost's
    OpenMP threads were seen to run 15-30x slower on a busy 2-core machine, and the
    evaluation harness parallelises over folds instead.
    """

    def __init__(self, n_estimators: int = 400, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.9, colsample_bytree: float = 0.8,
                 min_child_weight: float = 1.0, seed: int = 0, n_jobs: int | None = 1):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.seed = seed
        self.n_jobs = n_jobs

    def _make_estimator(self):
        """A fresh XGBoost regressor with this selector's hyper-parameters."""
        from xgboost import XGBRegressor

        return XGBRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight,
            random_state=self.seed,
            n_jobs=self.n_jobs,
            tree_method="hist",
            objective="reg:squarederror",
        )
