"""Evaluation protocols: how the tasks of a table split into training and test folds.

Every protocol yields ``Fold(name, train_idx, test_idx)`` (a named tuple, so it unpacks
as ``(fold_name, train_idx, test_idx)``) with sorted task indices; all are seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from metainf.selector.table import PerfTable

PROTOCOLS = ("random", "loho", "lomo", "kfold")
"""Protocol names the CLI accepts (besides --holdout-col)."""


class ProtocolError(ValueError):
    """A protocol that cannot be applied to this table; ``flag`` is the input to fix."""

    def __init__(self, message: str, flag: str = "--protocol"):
        super().__init__(message)
        self.flag = flag


class Fold(NamedTuple):
    """One train/test split of the tasks."""

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray


def _candidates(table: PerfTable) -> np.ndarray:
    return np.isfinite(table.cost).sum(axis=1)


def random_folds(table: PerfTable, *, n_test: int = 1000, n_splits: int = 5,
                 seed: int = 0) -> list[Fold]:
    """The paper's appendix A.2: N random held-out tasks spread over ``n_splits`` splits.

    N is capped by the number of tasks with at least two candidates (others have nothing
    to choose); the N drawn tasks are cut into ``n_splits`` disjoint test sets and each
    split trains on every other task of the table. One fit per split, not one per task.
    """
    if n_test < 1 or n_splits < 1:
        raise ProtocolError("random protocol: --n-test and --n-splits must be >= 1",
                            flag="--n-test")
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(_candidates(table) >= 2)
    n = min(int(n_test), eligible.size)
    splits = min(int(n_splits), n)
    if splits < 1 or table.n_tasks - n // max(splits, 1) < 1:
        raise ProtocolError(
            f"random protocol needs tasks with at least two measured methods and some left "
            f"to train on; this table has {eligible.size} such task(s) of {table.n_tasks}")
    drawn = rng.permutation(eligible)[:n]
    folds = []
    for k, test in enumerate(np.array_split(drawn, splits)):
        test = np.sort(test)
        train = np.setdiff1d(np.arange(table.n_tasks), test)
        folds.append(Fold(f"split{k}", train, test))
    return folds


def kfold_folds(table: PerfTable, *, k: int = 5, seed: int = 0) -> list[Fold]:
    """k-fold cross-validation over tasks, shuffled with the seed."""
    n = table.n_tasks
    if n < 2:
        raise ProtocolError(f"kfold needs at least 2 tasks; the table has {n}")
    k = max(2, min(int(k), n))
    order = np.random.default_rng(seed).permutation(n)
    folds = []
    for i, test in enumerate(np.array_split(order, k)):
        test = np.sort(test)
        folds.append(Fold(f"fold{i}", np.setdiff1d(np.arange(n), test), test))
    return folds


def holdout_folds(table: PerfTable, column: str) -> list[Fold]:
    """Leave one value of ``column`` out: one fold per distinct value, named after it."""
    if column not in table.tasks.columns:
        raise ProtocolError(
            f"holdout column {column!r} is not a task column; task columns: "
            f"{list(table.tasks.columns)}", flag="--holdout-col")
    values = table.tasks[column].astype(str).to_numpy()
    distinct = sorted(set(values))
    if len(distinct) < 2:
        raise ProtocolError(
            f"holdout column {column!r} has a single value ({distinct[0] if distinct else '-'})"
            f"; leaving it out leaves nothing to train on", flag="--holdout-col")
    return [Fold(f"{column}={v}", np.flatnonzero(values != v), np.flatnonzero(values == v))
            for v in distinct]


def _role_column(table: PerfTable, role: str, protocol: str, flag: str) -> str:
    col = getattr(table.mapping, f"{role}_col")
    if not col:
        raise ProtocolError(f"{protocol} needs a {role} column: name it with {flag}", flag=flag)
    return col


def group_column(table: PerfTable, protocol: str, holdout_col: str | None = None
                 ) -> str | None:
    """The task column a protocol holds out, whose values group the inner folds of a fit:
    hardware for loho, model for lomo, the column of a holdout; None for task folds."""
    return {"loho": table.mapping.hardware_col, "lomo": table.mapping.model_col,
            "holdout": holdout_col}.get(protocol)


def make_folds(table: PerfTable, protocol: str, *, n_test: int = 1000, n_splits: int = 5,
               k: int = 5, seed: int = 0, holdout_col: str | None = None) -> list[Fold]:
    """The folds of a named protocol (``holdout`` needs ``holdout_col``)."""
    makers: dict[str, Callable[[], list[Fold]]] = {
        "random": lambda: random_folds(table, n_test=n_test, n_splits=n_splits, seed=seed),
        "kfold": lambda: kfold_folds(table, k=k, seed=seed),
        "loho": lambda: holdout_folds(
            table, _role_column(table, "hardware", "loho", "--hardware-col")),
        "lomo": lambda: holdout_folds(
            table, _role_column(table, "model", "lomo", "--model-col")),
        "holdout": lambda: holdout_folds(table, holdout_col or ""),
    }
    if protocol not in makers:
        raise ProtocolError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return makers[protocol]()
