"""Hyper-parameter search by inner cross-validation over the training tasks, cached on disk.

A grid point is scored by the selections it leads to on held-out training tasks: the
mean regret (cost of the method ranked first / best cost of the task), the metric
selectors are judged by, with the mean squared error of the fitted target as the
tie-break. Only training data is ever seen. The inner folds ask the caller's question:
given group labels (the hardware of each task, for a selector asked about unseen
hardware; the model, for unseen models), whole groups are held out together, so a
choice that only interpolates between hardware already seen does not look good. The
outcome is cached as JSON under a hash of the searching configuration and the data, so
a refit on the same fold (another evaluation run, a retrain) skips the search.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metainf.selector.baselines.scores import as_cost_table

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/metainf/search")
"""Where search results are cached unless METAINF_SEARCH_CACHE or cache_dir says otherwise."""

CACHE_FORMAT = 6
"""Layout version of a cached search result (part of the key)."""


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid (name -> candidate values), names in sorted order."""
    names = sorted(grid)
    for name in names:
        values = grid[name]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"param_grid[{name!r}] must be a non-empty list of values "
                             f"(got {values!r})")
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(list(grid[n]) for n in names))]


def task_splits(n_tasks: int, n_splits: int, seed: int, groups=None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) task indices of the inner folds.

    With ``groups`` of two or more distinct values, whole groups are held out: one group
    per fold when there are at most ``n_splits`` groups (leave one group out), else
    sklearn's shuffled GroupKFold. Otherwise shuffled k-fold over tasks, k clamped to
    [2, n_tasks].
    """
    if n_tasks < 2:
        raise ValueError(f"an inner cross-validation needs at least 2 tasks (got {n_tasks})")
    if groups is not None and len(set(_group_labels(groups))) >= 2:
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

        labels = _group_labels(groups)
        if len(labels) != n_tasks:
            raise ValueError(f"{len(labels)} group labels for {n_tasks} tasks")
        n_groups = len(set(labels))
        splitter = (LeaveOneGroupOut() if n_groups <= int(n_splits) else
                    GroupKFold(int(n_splits), shuffle=True, random_state=seed))
        return [(np.sort(tr), np.sort(va))
                for tr, va in splitter.split(np.zeros(n_tasks), groups=labels)]
    k = max(2, min(int(n_splits), n_tasks))
    order = np.random.default_rng(seed).permutation(n_tasks)
    out = []
    for val in np.array_split(order, k):
        val = np.sort(val)
        out.append((np.setdiff1d(np.arange(n_tasks), val), val))
    return out


def _group_labels(groups) -> np.ndarray:
    return np.asarray([str(g) for g in groups])


def n_groups(groups) -> int:
    """Distinct group labels (0 for None)."""
    return 0 if groups is None else len(set(_group_labels(groups)))


def task_regrets(C: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per task, cost(predicted best) / best cost; NaN for a task with fewer than two
    measured methods (nothing to choose)."""
    C = as_cost_table(C)
    pred = np.where(np.isfinite(pred), pred, np.inf)
    masked = np.where(np.isfinite(C), pred, np.inf)
    out = np.full(C.shape[0], np.nan)
    rows = np.flatnonzero(np.isfinite(C).sum(axis=1) >= 2)
    if rows.size:
        pick = np.argmin(masked[rows], axis=1)
        out[rows] = C[rows, pick] / np.nanmin(C[rows], axis=1)
    return out


def selection_regret(C: np.ndarray, pred: np.ndarray) -> float:
    """Mean over tasks with two or more measured methods of cost(predicted best) / best cost."""
    r = task_regrets(C, pred)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def cache_key(config: Mapping[str, Any], *arrays: np.ndarray) -> str:
    """A hash of a JSON-able configuration and the bytes of the data arrays."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, **config}, sort_keys=True,
                        default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def search_key(config: Mapping[str, Any], X: np.ndarray, C: np.ndarray, Mf: np.ndarray,
               groups=None) -> str:
    """The cache key of a search: its configuration, the task features, the cost table
    (unmeasured as -1), the method features and which tasks share a group."""
    codes = (np.unique(_group_labels(groups), return_inverse=True)[1]
             if groups is not None else np.zeros(0))
    return cache_key(config, X, np.nan_to_num(C, nan=-1.0), Mf, codes)


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else $METAINF_SEARCH_CACHE, else ~/.cache/metainf/search."""
    base = cache_dir or os.environ.get("METAINF_SEARCH_CACHE") or DEFAULT_CACHE_DIR
    return Path(base).expanduser()


class SearchCache:
    """Search outcomes as one JSON file per key; unreadable entries count as misses."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = resolve_cache_dir(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key[:40]}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached outcome of ``key``, or None."""
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable search cache entry %s: %s", path, exc)
            return None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store an outcome atomically (concurrent writers of one key write the same bytes)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".search-", dir=self.directory)
            with os.fdopen(fd, "w") as f:
                json.dump(value, f, sort_keys=True, default=float)
            os.replace(tmp, self._path(key))
        except OSError as exc:  # a cache that cannot be written only costs time
            log.warning("cannot write the search cache in %s: %s", self.directory, exc)
