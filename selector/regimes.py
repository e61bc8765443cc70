"""Seen or unseen: whether a task's group (its hardware, its model) resembles one trained on.

A selector asked about unseen hardware must not trust what it learned by interpolating
between hardware it has seen; but a task whose hardware is (nearly) the same as one in
training is interpolation after all. The group's *signature* is the feature columns
that are constant within every training group (the group's own facts and description);
a task is *seen* when its signature lies within :data:`SEEN_DISTANCE` of a training
group's (Euclidean, in the featurizer's units: standardised facts, embedding
components). With a single training group every constant column is its signature.
"""

from __future__ import annotations

import numpy as np

SEEN_DISTANCE = 0.25
"""A task is seen when its group's signature is within this distance of a training
group's: a quarter of one standard deviation of one fact, or a description that differs
in a word or two (two names of one GPU, a power-capped twin), not in its facts."""

CONSTANT_TOL = 1e-9
"""Spread (relative to a column's scale) under which a column counts as constant."""


class GroupSignature:
    """The columns that identify a group, each training group's values, and the radius."""

    def __init__(self, columns: np.ndarray, signatures: np.ndarray, tau: float):
        self.columns = np.asarray(columns, dtype=int)
        self.signatures = np.asarray(signatures, dtype=float)
        self.tau = float(tau)

    @classmethod
    def fit(cls, X: np.ndarray, groups) -> GroupSignature:
        """Learn the signature columns and values of the training groups of X."""
        X = np.asarray(X, dtype=float)
        labels = np.asarray([str(g) for g in groups])
        names = sorted(set(labels))
        tol = CONSTANT_TOL * np.maximum(np.abs(X).max(axis=0, initial=0.0), 1.0)
        constant = np.ones(X.shape[1], dtype=bool)
        for g in names:
            rows = X[labels == g]
            constant &= (rows.max(axis=0) - rows.min(axis=0)) <= tol
        columns = np.flatnonzero(constant)
        signatures = np.stack([X[labels == g][0, columns] for g in names])
        return cls(columns, signatures, SEEN_DISTANCE)

    def nearest(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each task's nearest training group (its index in sorted label order) and the
        scaled distance to it."""
        X = np.asarray(X, dtype=float)
        if self.columns.size == 0:
            return np.zeros(X.shape[0], dtype=int), np.zeros(X.shape[0])
        d = _distances(X[:, self.columns], self.signatures)
        return d.argmin(axis=1), d.min(axis=1)

    def distance(self, X: np.ndarray) -> np.ndarray:
        """Each task's scaled distance to the nearest training group's signature."""
        return self.nearest(X)[1]

    def twin(self, X: np.ndarray) -> np.ndarray:
        """Each task's nearest training group where it is seen (its index in sorted label
        order), -1 where no training group is within the seen distance."""
        index, distance = self.nearest(X)
        return np.where(distance <= self.tau + 1e-12, index, -1)

    def seen(self, X: np.ndarray) -> np.ndarray:
        """Whether each task's group resembles a training group (bool per task)."""
        return self.twin(X) >= 0

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The state as arrays (for an .npz)."""
        return {"regime_columns": self.columns, "regime_signatures": self.signatures,
                "regime_tau": np.array([self.tau])}

    @classmethod
    def from_arrays(cls, state) -> GroupSignature | None:
        """Inverse of :meth:`to_arrays`; None when the state holds no regime."""
        if "regime_columns" not in state:
            return None
        return cls(state["regime_columns"], state["regime_signatures"],
                   float(state["regime_tau"][0]))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and the rows of b."""
    diff = a[:, None, :] - b[None, :, :]
    return np.sqrt(np.nansum(diff * diff, axis=2))
