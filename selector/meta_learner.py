"""MetaInf: XGBoost on [task features, method features], a ranking head and a level head.

Runtimes span orders of magnitude across tasks while a choice within a task turns on
differences of a few percent, so one regressor of absolute log cost spends its capacity
on the task's level. MetaInf therefore fits two boosters on the same pair rows:

- the *ranking head* regresses the task-relative log cost (log cost minus the task's
  mean log cost over its measured methods); it alone orders the methods of a task, and
  its hyper-parameters are chosen by inner cross-validation on the training tasks;
- the *level head* regresses absolute log cost (the paper's original target); it only
  sets the task's level, which budgets need (cost = price per hour x runtime).

The prediction is ``log cost(t, m) = ranking(t, m) + level(t)`` with ``level(t)`` the
mean over the training methods of ``level head(t, m') - ranking(t, m')``: the ranking
head's order, the level head's mean. Features of new rows are snapped to the nearest
training value first (see :mod:`metainf.selector.snapping`), so an unseen GPU whose
facts lie between two known ones falls with the nearer one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from metainf.selector.base import (
    PairwiseRegressorSelector,
    log_cost,
    pair_rows,
    relative_log_cost,
)
from metainf.selector.snapping import NearestValueSnapper

DEFAULT_PARAM_GRID: dict[str, tuple] = {
    "max_depth": (4, 6),
    "min_child_weight": (1.0, 5.0, 10.0),
    "n_estimators": (200, 400, 800),
}
"""Ranking-head hyper-parameters searched by default: 6 fits per inner fold, since the
rounds are read off one fit. The learning rate stays at the constructor's (the staged
rounds cover the rate x rounds trade-off); depth 8, a second rate and a wider grid cost
2-3x more and chose worse on noisy tables (a noisier choice, not a better model)."""

LEVEL_FILE = "xgboost.ubj"
"""File name of the level head (absolute log cost) in a saved model folder."""

RANKER_FILE = "xgboost-ranker.ubj"
"""File name of the ranking head (task-relative log cost) in a saved model folder."""

STATE_FILE = "metainf-state.npz"
"""The selector's arrays beside its boosters: snapping values, training method features."""


class MetaInfSelector(PairwiseRegressorSelector):
    """The paper's meta-learner f(E_data, E_model, E_hw, E_method) -> log cost, by XGBoost.

    Fit on task features X (workload, model and hardware embeddings plus facts) and
    method features M. ``n_estimators`` ... ``min_child_weight`` configure the level head,
    and the ranking head where ``search`` is off or the grid leaves them out;
    ``param_grid`` (None: :data:`DEFAULT_PARAM_GRID`) is searched with ``cv`` inner folds
    over the training tasks, the outcome cached under ``cache_dir`` (None:
    $METAINF_SEARCH_CACHE or ~/.cache/metainf/search) unless ``cache`` is off.
    ``relative=False`` gives the single absolute regressor of the paper. Deterministic
    for a given ``seed`` and data. ``n_jobs`` defaults to 1: with torch loaded in the
    same process (the sentence-transformer), XGBoost's OpenMP threads were seen to run
    15-30x slower on a busy 2-core machine, and the evaluation harness parallelises over
    folds instead.
    """

    def __init__(self, n_estimators: int = 400, max_depth: int = 6, learning_rate: float = 0.05,
                 subsample: float = 0.9, colsample_bytree: float = 0.8,
                 min_child_weight: float = 1.0, seed: int = 0, n_jobs: int | None = 1,
                 relative: bool = True, search: bool = True,
                 param_grid: Mapping[str, Sequence[Any]] | None = None, cv: int = 3,
                 cache: bool = True, cache_dir: str | None = None):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.seed = seed
        self.n_jobs = n_jobs
        self.relative = relative
        self.search = search
        self.param_grid = param_grid
        self.cv = cv
        self.cache = cache
        self.cache_dir = cache_dir

    # -- hooks of the pairwise base ------------------------------------------------------

    def _make_estimator(self, **params):
        """A fresh XGBoost regressor with this selector's hyper-parameters (``params`` win)."""
        from xgboost import XGBRegressor

        config = {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
        }
        config.update(params)
        return XGBRegressor(**config, random_state=self.seed, n_jobs=self.n_jobs,
                            tree_method="hist", objective="reg:squarederror")

    def _param_grid(self) -> Mapping[str, Sequence[Any]]:
        """The ranking head's search grid ({} when search is off)."""
        if not self.search:
            return {}
        return DEFAULT_PARAM_GRID if self.param_grid is None else self.param_grid

    def _staged_param(self) -> str | None:
        """Boosting rounds: one fit with the most rounds answers for fewer."""
        return "n_estimators"

    def _predict_staged(self, estimator, rows, value):
        """Predict with the first ``value`` boosting rounds only."""
        return estimator.predict(rows, iteration_range=(0, int(value)))

    def _make_preprocessor(self):
        """Snap new rows to the nearest training value of each feature."""
        return NearestValueSnapper()

    # -- fit and predict -------------------------------------------------------------------

    def fit(self, X, C, M=None):
        """Fit the level head, search and fit the ranking head; returns self."""
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        if X.ndim != 2 or C.ndim != 2 or X.shape[0] != C.shape[0]:
            raise ValueError(f"X [n, d] and C [n, m] must have one row per task (got shapes "
                             f"{X.shape} and {C.shape})")
        Mf = self._method_features(M, C.shape[1])
        snapper = NearestValueSnapper().fit(pair_rows(X, Mf))
        level = self._fit_pairs(X, C, Mf, log_cost, snapper, {})
        ranker = None
        self.best_params_: dict[str, Any] = {}
        self.search_scores_: list[dict[str, Any]] = []
        if self.relative:
            if X.shape[0] >= 2 and self._param_grid():
                outcome = self._search(X, C, Mf, relative_log_cost, n_splits=self.cv,
                                       seed=self.seed, cache_dir=self.cache_dir,
                                       use_cache=self.cache)
                self.best_params_ = dict(outcome["params"])
                self.search_scores_ = list(outcome["scores"])
            ranker = self._fit_pairs(X, C, Mf, relative_log_cost, snapper, self.best_params_)
        self.estimator_ = TwoHeadRegressor(level, ranker, snapper, Mf)
        self.n_methods_ = C.shape[1]
        return self

    def predict_log_cost(self, X, M=None) -> np.ndarray:
        """Predicted log cost [n_tasks, n_methods]: ranking head plus the task's level."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_grid(np.asarray(X, dtype=float),
                                            self._method_features(M, self.n_methods_))

    def predict_cost(self, X, M=None):
        """Predicted cost of every method for every task (lower is better)."""
        return np.exp(self.predict_log_cost(X, M))

    def predict_rows(self, rows) -> np.ndarray:
        """Predicted log cost of each [task features, method features] row (any pairs)."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(np.asarray(rows, dtype=float)), dtype=float)

    # -- persistence -----------------------------------------------------------------------

    def save_state(self, directory: str | Path) -> list[str]:
        """Write the boosters (XGBoost's own format) and arrays; returns the file names."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.save(directory)

    @classmethod
    def load_state(cls, directory: str | Path, params: Mapping[str, Any],
                   info: Mapping[str, Any] | None = None) -> MetaInfSelector:
        """A fitted selector from :meth:`save_state`'s files and its hyper-parameters."""
        selector = cls(**params)
        selector.estimator_ = TwoHeadRegressor.load(directory)
        selector.n_methods_ = selector.estimator_.method_features.shape[0]
        selector.best_params_ = dict((info or {}).get("best_params", {}))
        selector.search_scores_ = []
        return selector

    def for_serving(self) -> MetaInfSelector:
        """Predict on one thread: a Select scores a handful of rows, threads only add latency."""
        check_is_fitted(self, "estimator_")
        for head in self.estimator_.heads():
            head.set_params(n_jobs=1)
        return self


class TwoHeadRegressor:
    """The fitted log-cost model of pair rows: ranking head + per-task level, on snapped rows.

    ``predict(rows)`` takes any [task features, method features] rows, like a single
    regressor would; ``ranker`` None means the level head alone.
    """

    def __init__(self, level, ranker, snapper: NearestValueSnapper,
                 method_features: np.ndarray):
        self.level = level
        self.ranker = ranker
        self.snapper = snapper
        self.method_features = np.asarray(method_features, dtype=float)

    @property
    def n_features_in_(self) -> int:
        """Width of a pair row (task features + method features)."""
        return self.snapper.n_features_in_

    def heads(self) -> list:
        """The fitted XGBoost regressors, level head first."""
        return [h for h in (self.level, self.ranker) if h is not None]

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Log cost of each pair row; the level of a row's task comes from its task part."""
        rows = np.asarray(rows, dtype=float)
        snapped = self.snapper.transform(rows)
        if self.ranker is None:
            return _predict(self.level, snapped)
        n_task = rows.shape[1] - self.method_features.shape[1]
        tasks, inverse = np.unique(rows[:, :n_task], axis=0, return_inverse=True)
        return _predict(self.ranker, snapped) + self.levels(tasks)[inverse.reshape(-1)]

    def predict_grid(self, X: np.ndarray, M: np.ndarray) -> np.ndarray:
        """Log cost [n_tasks, n_methods] of every pair of X's tasks and M's methods."""
        rows = self.snapper.transform(pair_rows(X, M))
        if self.ranker is None:
            return _predict(self.level, rows).reshape(X.shape[0], M.shape[0])
        pred = _predict(self.ranker, rows).reshape(X.shape[0], M.shape[0])
        return pred + self.levels(X)[:, None]

    def levels(self, X: np.ndarray) -> np.ndarray:
        """Per task, the mean over the training methods of level head - ranking head."""
        ref = self.method_features
        rows = self.snapper.transform(pair_rows(X, ref))
        gap = _predict(self.level, rows) - _predict(self.ranker, rows)
        return gap.reshape(X.shape[0], ref.shape[0]).mean(axis=1)

    def save(self, directory: str | Path) -> list[str]:
        """Each head in XGBoost's own format, the arrays in an .npz; returns the file names."""
        d = Path(directory)
        self.level.save_model(str(d / LEVEL_FILE))
        files = [LEVEL_FILE]
        if self.ranker is not None:
            self.ranker.save_model(str(d / RANKER_FILE))
            files.append(RANKER_FILE)
        np.savez(d / STATE_FILE, snap_values=self.snapper.to_array(),
                 method_features=self.method_features)
        return files + [STATE_FILE]

    @classmethod
    def load(cls, directory: str | Path) -> TwoHeadRegressor:
        """Inverse of :meth:`save`."""
        from xgboost import XGBRegressor

        d = Path(directory)
        level = XGBRegressor()
        level.load_model(str(d / LEVEL_FILE))
        ranker = None
        if (d / RANKER_FILE).exists():
            ranker = XGBRegressor()
            ranker.load_model(str(d / RANKER_FILE))
        with np.load(d / STATE_FILE) as state:
            snapper = NearestValueSnapper.from_array(state["snap_values"])
            method_features = state["method_features"]
        return cls(level, ranker, snapper, method_features)


def _predict(estimator, rows: np.ndarray) -> np.ndarray:
    """A fitted XGBoost regressor's predictions of rows, straight from its booster."""
    if rows.shape[0] == 0:
        return np.zeros(0)
    out = estimator.get_booster().inplace_predict(np.ascontiguousarray(rows))
    return np.asarray(out, dtype=float).reshape(-1)
