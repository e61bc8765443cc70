"""How far to trust an answer: out-of-distribution axes, intervals and confidence.

Out of distribution: per axis (workload, model, hardware), a query entity's features
are compared with those of every entity the model was trained on; it is out of
distribution when its nearest known entity is farther than the farthest any known
entity is from its own nearest neighbour (times :data:`OOD_SLACK`), or, with a single
known entity, farther than :data:`OOD_SINGLE` in the featurizer's units. The interval
of an out-of-distribution answer is widened (:func:`widened`): by :data:`OOD_WIDEN` at the
threshold, growing with the log of how many thresholds away the query lies (an error
grows with how far a model extrapolates; the calibration held out only what training
resembled), up to a factor :data:`OOD_MAX_FACTOR` either way.

Confidence: the probability, under the model's own errors, that the chosen candidate
is the best feasible one or within 1 % of it: the candidates' log costs are drawn
around their predictions, each hardware option's level error shared by its methods and
the ranking error drawn per candidate, and the share of draws where the choice holds is
the confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OOD_SLACK = 1.5
"""A query is out of distribution beyond this multiple of the largest nearest-neighbour
distance among the known entities of its axis."""

OOD_SINGLE = 1.0
"""With one known entity on an axis, the distance (featurizer units: standardised facts,
embedding components) beyond which a query is out of distribution."""

OOD_WIDEN = 2.0
"""Factor on the interval half-width (log cost) of an answer at the out-of-distribution
threshold; farther out, it grows with the log of the distance in thresholds."""

OOD_MAX_FACTOR = 10.0
"""Widest interval widening gives: a factor 10 either way of the prediction (an order of
magnitude, the range a roofline's efficiency spans across CPUs and GPUs), or the
calibrated interval where that is wider already."""

Z80 = 1.2815515655446004
"""The standard normal quantile of 0.9: a central 80 % interval is +-Z80 sigma."""

CONFIDENCE_DRAWS = 2000
"""Draws behind a confidence (its standard error is at most 1.1 points)."""


@dataclass(frozen=True)
class AxisDistance:
    """One axis of a query: its nearest known entity, the distance, and the threshold."""

    axis: str
    nearest: str
    distance: float
    threshold: float

    @property
    def out_of_distribution(self) -> bool:
        """Whether the query lies beyond what training covered on this axis."""
        return self.distance > self.threshold

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {"axis": self.axis, "nearest": self.nearest,
                "distance": round(float(self.distance), 4),
                "threshold": round(float(self.threshold), 4),
                "out_of_distribution": self.out_of_distribution}


def axis_threshold(known: np.ndarray) -> float:
    """The out-of-distribution threshold of an axis from its known entities' features."""
    if len(known) < 2:
        return OOD_SINGLE
    d = _distances(known, known)
    np.fill_diagonal(d, np.inf)
    return OOD_SLACK * float(d.min(axis=1).max())


def widening(axes) -> float:
    """Factor on an answer's interval half-width (log cost) from its axes' distances: 1
    in distribution; out of it, OOD_WIDEN x (1 + ln(distance / threshold)) of its
    farthest axis."""
    out = [OOD_WIDEN * (1.0 + math.log(d.distance / d.threshold)) for d in axes
           if d.out_of_distribution and d.threshold > 0]
    return max(out, default=1.0)


def widened(half_width: float, axes) -> float:
    """An answer's interval half-width (log cost) widened for its axes, capped at a
    factor OOD_MAX_FACTOR either way (never narrower than the calibrated one)."""
    factor = widening(axes)
    if factor == 1.0 or not math.isfinite(half_width):
        return half_width
    return min(half_width * factor, max(half_width, math.log(OOD_MAX_FACTOR)))


def nearest(vector: np.ndarray, known: np.ndarray) -> tuple[int, float]:
    """Index of the known row nearest a vector, and its distance."""
    d = _distances(vector[None, :], known)[0]
    i = int(np.argmin(d))
    return i, float(d[i])


def confidence(log_cost: np.ndarray, sigma_level: np.ndarray, sigma_rank: float,
               option: np.ndarray, chosen: int, eligible: np.ndarray, seed: int = 0) -> float:
    """P(the chosen candidate is within 1 % of the best eligible one) under the errors.

    ``log_cost`` [n] predictions, ``sigma_level`` [n] each candidate's level error (its
    option's), ``sigma_rank`` the ranking error of each candidate (one for all, or [n]),
    ``option`` [n] the hardware option of each candidate (level errors are shared within
    an option).
    """
    sigma_rank = np.broadcast_to(np.asarray(sigma_rank, dtype=float), np.shape(log_cost))
    idx = np.flatnonzero(eligible)
    if chosen not in idx:
        return 0.0
    if len(idx) == 1:
        return 1.0
    rng = np.random.default_rng(seed)
    options = np.unique(option[idx])
    level = rng.standard_normal((CONFIDENCE_DRAWS, len(options)))
    pos = {o: k for k, o in enumerate(options)}
    shared = level[:, [pos[o] for o in option[idx]]] * sigma_level[idx]
    own = rng.standard_normal((CONFIDENCE_DRAWS, len(idx))) * sigma_rank[idx]
    draws = log_cost[idx] + shared + own
    mine = draws[:, list(idx).index(chosen)]
    return float(np.mean(mine <= draws.min(axis=1) + np.log1p(0.01)))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a[:, None, :] - b[None, :, :]
    return np.sqrt(np.nansum(diff * diff, axis=2))
