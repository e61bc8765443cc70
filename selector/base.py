"""The contract every selector follows, and the pairwise-regression base most share.

A selector is an sklearn-style estimator fitted on a task x method cost table:
``X`` holds one feature row per task, ``C`` the cost of each (task, method) pair
(lower is better, NaN where a method was not measured for a task) and ``M``
one feature row per method (None: the methods are only columns of C).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from metainf.selector.baselines.scores import as_cost_table
from metainf.selector.search import (
    SearchCache,
    grid_points,
    n_groups,
    search_key,
    task_regrets,
    task_splits,
)

NOT_SEARCH_CONFIG = ("n_jobs", "cache_dir", "cache", "impute")
"""Hyper-parameters that cannot change a search's outcome (left out of its cache key)."""


class TaskMethodSelector(BaseEstimator):
    """Base of all selectors: fit on (X, C, M), predict a cost for every method."""

    predicts_level = False
    """Whether predict_cost estimates the cost itself (a level budgets can use), not only
    a score that orders the methods."""

    fit_weight = 1.0
    """Rough fit time relative to the cheap baselines. The evaluation starts the heaviest
    jobs first, so that no long fit is left to run alone at the end."""

    def fit(self, X: np.ndarray, C: np.ndarray, M: np.ndarray | None = None):
        """Learn from task features X [n, d], costs C [n, m] and method features M [m, e]."""
        raise NotImplementedError

    def predict_cost(self, X: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """Predicted cost [n, m] for every task and method; lower is better."""
        raise NotImplementedError

    def rank(self, X: np.ndarray, M: np.ndarray | None = None) -> np.ndarray:
        """Method indices per task, best first."""
        return np.argsort(self.predict_cost(X, M), axis=1, kind="stable")


def pair_rows(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Every (task, method) pair as one row [task features, method features], task-major."""
    n, m = X.shape[0], M.shape[0]
    return np.hstack([np.repeat(X, m, axis=0), np.tile(M, (n, 1))])


def log_cost(C: np.ndarray) -> np.ndarray:
    """Natural log of a cost table; NaN where unmeasured (non-finite or non-positive)."""
    return np.log(as_cost_table(C))


def relative_log_cost(C: np.ndarray) -> np.ndarray:
    """Log cost minus the task's mean log cost over its measured methods (NaN: unmeasured).

    The task's level (its runtime scale, which spans orders of magnitude across tasks)
    drops out and what is left is what a choice within the task depends on.
    """
    L = log_cost(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task with nothing measured
        return L - np.nanmean(L, axis=1, keepdims=True)


class PairwiseRegressorSelector(TaskMethodSelector):
    """Regress log cost on [task features, method features]; rank methods by prediction.

    Subclasses supply ``_make_estimator``; without method features the methods are
    one-hot encoded. A subclass may also supply ``_param_grid`` (hyper-parameters chosen
    by :meth:`_search` on the training tasks only), ``_staged_param`` (a grid parameter
    one fit answers for all its smaller values) and ``_make_preprocessor`` (a transformer
    of pair rows fitted on the training rows).
    """

    predicts_level = True

    def _make_estimator(self, **params):
        """A fresh, unfitted regressor with this selector's hyper-parameters (``params`` win)."""
        raise NotImplementedError

    def _param_grid(self) -> Mapping[str, Sequence[Any]]:
        """Hyper-parameters to choose by inner cross-validation (name -> values); {}: none."""
        return {}

    def _staged_param(self) -> str | None:
        """A grid parameter whose smaller values :meth:`_predict_staged` reads off one fit."""
        return None

    def _predict_staged(self, estimator, rows: np.ndarray, value: Any) -> np.ndarray:
        """Predictions of ``estimator`` as if fitted with ``_staged_param() = value``."""
        raise NotImplementedError

    def _make_preprocessor(self):
        """A fresh transformer of pair rows (fitted on training rows), or None."""
        return None

    def _method_features(self, M: np.ndarray | None, n_methods: int) -> np.ndarray:
        return np.eye(n_methods) if M is None else np.asarray(M, dtype=float)

    def fit(self, X, C, M=None):
        """Fit the regressor on every measured (task, method) pair."""
        X = np.asarray(X, dtype=float)
        C = np.asarray(C, dtype=float)
        Mf = self._method_features(M, C.shape[1])
        self.estimator_ = self._fit_pairs(X, C, Mf, log_cost, None, {})
        self.n_methods_ = C.shape[1]
        return self

    def predict_cost(self, X, M=None):
        """Predicted cost of every method for every task, in one vectorised call."""
        check_is_fitted(self, "estimator_")
        X = np.asarray(X, dtype=float)
        Mf = self._method_features(M, self.n_methods_)
        pred = self.estimator_.predict(pair_rows(X, Mf))
        return np.exp(np.asarray(pred, dtype=float)).reshape(X.shape[0], Mf.shape[0])

    def _fit_pairs(self, X, C, Mf, target: Callable[[np.ndarray], np.ndarray], preprocessor,
                   params: Mapping[str, Any]):
        """A fresh estimator fitted on the measured pairs of (X, C) to ``target(C)``."""
        rows = pair_rows(X, Mf)
        if preprocessor is not None:
            rows = preprocessor.transform(rows)
        y = target(C).reshape(-1)
        measured = np.isfinite(y)
        if not measured.any():
            raise ValueError("no measured (task, method) pair to learn from")
        estimator = self._make_estimator(**params) if params else self._make_estimator()
        return estimator.fit(rows[measured], y[measured])

    def _variants(self) -> list[dict[str, Any]]:
        """Ways to turn one fitted estimator's predictions into scores, scored in the
        search beside the grid (most conservative first: ties go to it); [{}]: as is."""
        return [{}]

    def _inner_target(self, target, C_train: np.ndarray, X_train: np.ndarray | None = None,
                      groups_train=None):
        """The target an inner fold fits, given that fold's training costs, tasks and
        their groups."""
        return target

    def _scores(self, pred: np.ndarray, target, variant: Mapping[str, Any],
                X: np.ndarray | None = None) -> np.ndarray:
        """Selection scores [n, m] (lower is better) of tasks X from predictions of
        ``target``."""
        return pred

    def _inner_regime(self, X_train: np.ndarray, groups_train) -> Callable | None:
        """Given an inner fold's training tasks, a function telling which tasks resemble
        them (``seen(X) -> bool per task``); None: every task is one regime."""
        return None

    def _search(self, X, C, Mf, target: Callable[[np.ndarray], np.ndarray], *, n_splits: int,
                seed: int, groups=None, cache_dir=None, use_cache: bool = True,
                grid: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
        """Choose ``_param_grid`` values (and ``_variants`` entries) by inner CV; cached.

        Each grid point is fitted on the other folds' tasks and scored on the held-out
        tasks by the mean regret of the method it ranks first (then by the squared error
        of ``target``); ``groups`` hold whole groups out together (see
        :func:`~metainf.selector.search.task_splits`); ``grid`` replaces ``_param_grid``.
        Where ``_inner_regime`` splits the held-out tasks into those that resemble the
        fold's training tasks ("seen") and the rest ("unseen"), each regime gets the
        variant best on its own tasks (None where a regime had no scored task).
        Returns {"params", "variant", "regime_variants": {"seen", "unseen"}, "scores":
        [{params, variant, regret, mse}], "n_inner_folds", "grouped", "regime_tasks",
        "error_q90"} (the 90th percentile of the best point's absolute held-out error).
        """
        grid = self._param_grid() if grid is None else grid
        variants = self._variants()
        if not grid:
            return {"params": {}, "variant": variants[0], "scores": [],
                    "regime_variants": {"seen": None, "unseen": None}}
        points = grid_points(grid)
        config = {"selector": type(self).__name__,
                  "params": {k: v for k, v in self.get_params(deep=False).items()
                             if k not in NOT_SEARCH_CONFIG},
                  "grid": {k: list(grid[k]) for k in sorted(grid)},
                  "variants": variants,
                  "target": getattr(target, "__name__", repr(target)),
                  "n_splits": int(n_splits), "seed": int(seed)}
        key = search_key(config, X, C, Mf, groups)
        cache = SearchCache(cache_dir) if use_cache else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            return hit
        staged = self._staged_param()
        if staged is not None and staged not in grid:
            staged = None
        # Points that differ only in the staged parameter share one fit (the largest value).
        fits: dict[str, list[int]] = {}
        for i, point in enumerate(points):
            rest = {k: v for k, v in point.items() if k != staged}
            fits.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(i)
        splits = task_splits(X.shape[0], n_splits, seed, groups)
        labels = None if groups is None else np.asarray([str(g) for g in groups])
        # per (regime, point), the scored held-out tasks' regrets [tasks, variants]
        per_task: list[list[list[np.ndarray]]] = [[[] for _ in points] for _ in range(2)]
        fold_of: list[list[np.ndarray]] = [[], []]  # the inner fold of each of those tasks
        mse = np.zeros(len(points))
        errors: list[list[np.ndarray]] = [[] for _ in points]
        for train, val in splits:
            pre = self._make_preprocessor()
            X_val = X[val]
            rows = pair_rows(X_val, Mf)
            if pre is not None:
                rows = pre.fit(pair_rows(X[train], Mf)).transform(rows)
            fold_target = self._inner_target(target, C[train], X[train],
                                             None if labels is None else labels[train])
            y_val = fold_target(C[val])
            ok = np.isfinite(y_val)
            regime = (self._inner_regime(X[train], labels[train]) if labels is not None
                      else None)
            seen = regime(X_val) if regime is not None else np.ones(len(val), dtype=bool)
            scored = np.isfinite(C[val]).sum(axis=1) >= 2
            for r, mask in ((0, scored & ~seen), (1, scored & seen)):
                fold_of[r].append(np.full(int(mask.sum()), len(fold_of[r])))
            for members in fits.values():
                top = max(members, key=lambda i: points[i][staged]) if staged else members[0]
                est = self._fit_pairs(X[train], C[train], Mf, fold_target, pre, points[top])
                for i in members:
                    pred = (est.predict(rows) if i == top else
                            self._predict_staged(est, rows, points[i][staged]))
                    pred = np.asarray(pred, dtype=float).reshape(len(val), Mf.shape[0])
                    r = np.stack([task_regrets(C[val], self._scores(pred, fold_target, v,
                                                                    X_val))
                                  for v in variants], axis=1)
                    per_task[0][i].append(r[~seen & scored])
                    per_task[1][i].append(r[seen & scored])
                    mse[i] += float(np.mean((pred[ok] - y_val[ok]) ** 2)) if ok.any() else 0.0
                    errors[i].append(np.abs(pred[ok] - y_val[ok]))
        mse /= len(splits)
        stacked = [[np.concatenate(p) if p else np.zeros((0, len(variants))) for p in regime]
                   for regime in per_task]
        folds = [np.concatenate(f) if f else np.zeros(0, dtype=int) for f in fold_of]
        count = [len(f) for f in folds]
        overall = np.array([(stacked[0][i].sum(axis=0) + stacked[1][i].sum(axis=0))
                            / max(sum(count), 1) for i in range(len(points))])
        # per point, its best variant (ties: the most conservative, listed first)
        best_v = [min(range(len(variants)), key=lambda v: (round(overall[i, v], 9), v))
                  for i in range(len(points))]
        scores = [{"params": p, "variant": variants[best_v[i]],
                   "regret": float(overall[i, best_v[i]]), "mse": float(mse[i])}
                  for i, p in enumerate(points)]
        best = min(range(len(points)), key=lambda i: (round(scores[i]["regret"], 9),
                                                       best_v[i], scores[i]["mse"], i))
        regrets = [stacked[r][best] for r in (0, 1)]
        by_regime = {name: (variants[one_se_variant(regrets[r], folds[r])] if count[r]
                            else None)
                     for r, name in ((0, "unseen"), (1, "seen"))}
        outcome = {"params": points[best],
                   "variant": variants[one_se_variant(np.concatenate(regrets),
                                                      np.concatenate(folds))],
                   "regime_variants": by_regime, "scores": scores,
                   "n_inner_folds": len(splits), "grouped": n_groups(groups) >= 2,
                   "error_q90": float(np.quantile(np.concatenate(errors[best]), 0.9))
                   if any(e.size for e in errors[best]) else 0.0,
                   "regime_tasks": {"unseen": int(count[0]), "seen": int(count[1])}}
        if cache is not None:
            cache.put(key, outcome)
        return outcome


def one_se_variant(regrets: np.ndarray, folds: np.ndarray | None = None) -> int:
    """The most conservative variant (lowest index) whose held-out regret is within one
    standard error of the best's: ``regrets`` [tasks, variants] are the same tasks'
    regrets under each variant, and the error is that of their paired differences.

    Tasks held out together (``folds``: each task's inner fold) share a group and err
    together, so the error is the larger of the per-task one and the one across folds
    (the spread of the folds' mean differences). A variant that departs further from the
    prior must beat it by more than that noise; a smaller lead is the winner's curse of a
    search over many variants, and the conservative variant keeps it. 0 without tasks.
    """
    regrets = np.asarray(regrets, dtype=float)
    if regrets.ndim != 2 or regrets.shape[0] == 0:
        return 0
    mean = regrets.mean(axis=0)
    best = int(np.argmin(np.round(mean, 9)))
    labels = np.zeros(regrets.shape[0], dtype=int) if folds is None else np.asarray(folds)
    names = np.unique(labels)
    for v in range(regrets.shape[1]):
        diff = regrets[:, v] - regrets[:, best]
        se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else 0.0
        if names.size > 1:
            means = np.array([diff[labels == k].mean() for k in names])
            se = max(se, means.std(ddof=1) / np.sqrt(names.size))
        if diff.mean() <= se + 1e-12:
            return v
    return best
