"""The arrays one fold hands to a selector: features fitted on the training tasks only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metainf.selector.evaluation.protocols import Fold
from metainf.selector.table import PerfTable


@dataclass(frozen=True)
class FeatureConfig:
    """How tasks and methods are described: the description style and the SVD size."""

    style: str = "rich"
    svd_k: int = 16

    @property
    def label(self) -> str:
        """A short name for reports, e.g. 'rich/k16'."""
        return f"{self.style}/k{self.svd_k}"


@dataclass(frozen=True)
class FoldData:
    """Training and test features and costs of one fold, ready for any selector."""

    X_train: np.ndarray
    C_train: np.ndarray
    X_test: np.ndarray
    C_test: np.ndarray
    M: np.ndarray | None
    methods: tuple[str, ...]
    train_idx: np.ndarray
    test_idx: np.ndarray
    cobest_test: np.ndarray | None = None
    """The noise-aware co-best methods of each test task (None: strict truth only)."""
    available_test: np.ndarray | None = None
    """The methods measured on each test task's hardware for any task."""
    roofline_cols: tuple[int, int] | None = None
    """The task feature columns of the roofline (log seconds, known), where there is one."""
    hardware_cols: tuple[int, ...] | None = None
    """The hardware's task feature columns (for a per-hardware prior), where known."""
    groups_train: np.ndarray | None = None
    """Per training task, the group its protocol holds out (hardware under loho, model
    under lomo); a selector's inner folds hold these out together. None: task folds."""


def default_featurizer(style: str, svd_k: int, embedder, seed: int):
    """The project's TaskFeaturizer with the given style, SVD size, shared embedder and seed."""
    from metainf.selector.features import TaskFeaturizer

    return TaskFeaturizer(style=style, svd_k=svd_k, embedder=embedder, seed=seed)


def build_fold_data(table: PerfTable, fold: Fold, features: FeatureConfig, *, embedder=None,
                    seed: int = 0, featurizer_factory: Callable | None = None,
                    group_col: str | None = None) -> FoldData:
    """Fit a featurizer on the fold's training tasks and describe every task and method.

    ``group_col`` names the task column the protocol holds out (its values become the
    training tasks' groups)."""
    factory = featurizer_factory or default_featurizer
    featurizer = factory(features.style, features.svd_k, embedder, seed)
    featurizer.fit(table, fold.train_idx)
    X = np.asarray(featurizer.transform_tasks(table.tasks), dtype=float)
    M = featurizer.transform_methods(list(table.methods))
    M = None if M is None else np.asarray(M, dtype=float)
    return FoldData(
        X_train=X[fold.train_idx], C_train=table.cost[fold.train_idx],
        X_test=X[fold.test_idx], C_test=table.cost[fold.test_idx], M=M,
        methods=tuple(table.methods), train_idx=np.asarray(fold.train_idx),
        test_idx=np.asarray(fold.test_idx),
        cobest_test=None if table.cobest is None else table.cobest[fold.test_idx],
        available_test=table.available()[fold.test_idx],
        roofline_cols=(featurizer.roofline_cols() if hasattr(featurizer, "roofline_cols")
                       else None),
        hardware_cols=(featurizer.axis_cols("hardware") or None
                       if hasattr(featurizer, "axis_cols") else None),
        groups_train=(table.tasks[group_col].astype(str).to_numpy()[fold.train_idx]
                      if group_col else None),
    )
