"""Per-task normalisation of a cost table, shared by the table-driven baselines."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata


def as_cost_table(C) -> np.ndarray:
    """C as a float array with every non-positive or non-finite entry set to NaN (unmeasured)."""
    C = np.array(C, dtype=float, copy=True)
    if C.ndim != 2:
        raise ValueError(f"the cost table must be 2-D [tasks, methods], got shape {C.shape}")
    C[~np.isfinite(C) | (C <= 0)] = np.nan
    return C


def normalised_cost(C: np.ndarray) -> np.ndarray:
    """Cost divided by the task's best cost (>= 1; NaN where unmeasured or the row is empty)."""
    C = as_cost_table(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanmin(C, axis=1, keepdims=True)
    return C / best


def row_ranks(C: np.ndarray) -> np.ndarray:
    """1-based rank of each measured method within its task (ties averaged); NaN elsewhere."""
    C = as_cost_table(C)
    ranks = np.full_like(C, np.nan)
    for i, row in enumerate(C):
        ok = np.isfinite(row)
        if ok.any():
            ranks[i, ok] = rankdata(row[ok], method="average")
    return ranks


def column_mean(values: np.ndarray, fallback: np.ndarray | float = np.inf) -> np.ndarray:
    """Mean of each column over its measured rows; ``fallback`` where a column has none."""
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    count = ok.sum(axis=0)
    total = np.where(ok, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    fallback = np.broadcast_to(np.asarray(fallback, dtype=float), mean.shape)
    return np.where(count > 0, mean, fallback)


def check_n_methods(selector, M, n_methods: int) -> None:
    """Refuse method features whose count differs from the methods seen in fit."""
    if M is not None and np.asarray(M).shape[0] != n_methods:
        raise ValueError(
            f"{type(selector).__name__} was fitted on {n_methods} methods but got method "
            f"features for {np.asarray(M).shape[0]}; it cannot score unseen methods"
        )
