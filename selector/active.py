"""Which cells to measure next: expected regret reduction from the selector's intervals.

A grid is tasks x methods; a cell is one (task, method) the grid holds (``candidates``).
Some are measured (their log cost known exactly), the rest only predicted, each with a
normal error of scale ``sigma`` (log cost) per task: the model's ranking error, or its
interval's half-width, over :data:`~metainf.selector.trust.Z80`.

Per task, the selector's choice ``b`` is the candidate with the lowest known-or-predicted
log cost. A rival ``j`` could be better; the expected amount by which it beats ``b``
(log cost) is the expected improvement ``EI(d, s) = s phi(d/s) - d Phi(-d/s)`` with ``d``
the predicted gap and ``s`` the two cells' combined error: large where the intervals
overlap and the gap that choosing wrong would cost is wide. Measuring a cell removes its
share of ``s^2``, so a rival's score is ``EI x sigma_j^2 / s^2`` and the choice's own score
the sum over its rivals of ``EI x sigma_b^2 / s^2``. Measured cells and cells outside the
grid score NaN.

A task is *decided* when the probability that its choice is within 1 % of its best
reaches a threshold; the probability is the product over rivals of
``Phi((mu_j - mu_b + log 1.01) / s)``, a lower bound of the joint one (the rivals' events
are positively correlated through ``b``), so "decided" errs on the side of measuring.
Everything is vectorised over tasks and methods; no model is called here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from metainf.selector.trust import Z80

TIE_FRACTION = 0.01
"""Relative cost difference under which a choice counts as the best (ties within 1 %)."""

TIE = math.log1p(TIE_FRACTION)
"""The same margin in log cost."""

UNCALIBRATED_HALF_WIDTH = math.log(2.0)
"""Half-width (log cost) assumed for an uncalibrated model: within a factor of 2."""

PER_TASK = 2
"""Cells of one task per round of a ranking: its choice and its closest rival."""

DEFAULT_CONFIDENCE = 0.9
"""Confidence at which a task counts as decided unless the caller says otherwise."""


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def selector_sigma(selector, X: np.ndarray) -> np.ndarray:
    """Per task, the error scale (log cost) of one candidate's predicted rank position.

    The ranking head's held-out error where the model has one, else its interval's
    half-width, else :data:`UNCALIBRATED_HALF_WIDTH`; each over Z80 (as Select's
    confidence reads them).
    """
    n = len(X)
    rank = float(selector.ranking_error()) if hasattr(selector, "ranking_error") else 0.0
    if rank > 0:
        return np.full(n, rank / Z80)
    half = np.asarray(selector.interval_half_width(X), dtype=float)
    half = np.where(np.isfinite(half) & (half > 0), half, UNCALIBRATED_HALF_WIDTH)
    return half / Z80


def _state(pred_log: np.ndarray, measured_log: np.ndarray, candidates: np.ndarray,
           sigma: np.ndarray):
    """Known-or-predicted log cost, per-cell error, and each task's choice."""
    pred_log = np.asarray(pred_log, dtype=float)
    measured_log = np.asarray(measured_log, dtype=float)
    cand = np.asarray(candidates, dtype=bool)
    if pred_log.shape != cand.shape or measured_log.shape != cand.shape:
        raise ValueError(f"pred_log {pred_log.shape}, measured_log {measured_log.shape} and "
                         f"candidates {cand.shape} must have one shape [tasks, methods]")
    sig = np.broadcast_to(np.asarray(sigma, dtype=float).reshape(-1, 1), cand.shape)
    measured = cand & np.isfinite(measured_log)
    mu = np.where(measured, measured_log, pred_log)
    mu = np.where(cand & np.isfinite(mu), mu, np.inf)
    s = np.where(measured, 0.0, np.maximum(sig, 0.0))
    best = np.argmin(mu, axis=1)
    rows = np.arange(cand.shape[0])
    return mu, s, best, rows, cand, measured


def cell_scores(pred_log, measured_log, candidates, sigma) -> np.ndarray:
    """Expected regret reduction (log cost) of measuring each cell [tasks, methods].

    ``pred_log`` the model's log cost, ``measured_log`` the measured log cost (NaN where
    not measured), ``candidates`` the grid's cells, ``sigma`` per task (or scalar). NaN for
    measured cells and cells outside the grid.
    """
    mu, s, best, rows, cand, measured = _state(pred_log, measured_log, candidates, sigma)
    mu_b, s_b = mu[rows, best][:, None], s[rows, best][:, None]
    var = s * s + s_b * s_b
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.sqrt(var)
        d = mu - mu_b
        z = np.where(total > 0, d / np.where(total > 0, total, 1.0), np.inf)
        ei = np.where(total > 0, total * _phi(z) - d * ndtr(-z), 0.0)
        ei = np.where(cand & np.isfinite(mu), np.maximum(ei, 0.0), 0.0)
        ei[rows, best] = 0.0
        own = np.where(var > 0, s * s / np.where(var > 0, var, 1.0), 0.0)
        best_share = np.where(var > 0, s_b * s_b / np.where(var > 0, var, 1.0), 0.0)
    scores = ei * own
    scores[rows, best] = (ei * best_share).sum(axis=1)
    return np.where(cand & ~measured, scores, np.nan)


def task_confidence(pred_log, measured_log, candidates, sigma) -> np.ndarray:
    """Per task, a lower bound of P(its choice is within 1 % of its best) [tasks].

    1 for a task with a single candidate (nothing to choose) and 0 for one with none.
    """
    mu, s, best, rows, cand, _ = _state(pred_log, measured_log, candidates, sigma)
    mu_b, s_b = mu[rows, best][:, None], s[rows, best][:, None]
    total = np.sqrt(s * s + s_b * s_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = mu - mu_b + TIE
        p = np.where(total > 0, ndtr(margin / np.where(total > 0, total, 1.0)),
                     (margin >= 0).astype(float))
    p = np.where(cand & np.isfinite(mu), p, 1.0)
    p[rows, best] = 1.0
    conf = p.prod(axis=1)
    return np.where(cand.any(axis=1), conf, 0.0)


def decided(pred_log, measured_log, candidates, sigma,
            threshold: float = DEFAULT_CONFIDENCE) -> np.ndarray:
    """Per task, whether its choice is settled: confidence at or above ``threshold``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence threshold must lie in [0, 1] (got {threshold})")
    return task_confidence(pred_log, measured_log, candidates, sigma) >= threshold


def rank_cells(scores: np.ndarray, per_task: int | None = PER_TASK) -> np.ndarray:
    """Cells to measure, best first, as [k, 2] (task, method) rows.

    With ``per_task`` k the order goes in rounds: each round takes up to k cells of every
    task (its best-scoring left), tasks ordered by their best score in the round, a task's
    cells kept together. So a batch spreads over the undecided tasks instead of settling
    one task from the same stale prediction, and a task's choice and its closest rival
    are measured together: MetaInf learns a task's ranking from the differences between
    its measured cells, and one cell alone teaches it none. ``None``: by score only.
    Cells scoring NaN are left out; ties go to the lower task, then method, index.
    """
    scores = np.asarray(scores, dtype=float)
    t, m = np.nonzero(np.isfinite(scores))
    if not t.size:
        return np.zeros((0, 2), dtype=int)
    value = scores[t, m]
    order = np.lexsort((m, t, -value))                       # by score, ties by index
    t, m, value = t[order], m[order], value[order]
    if per_task:
        pos = np.zeros(len(t), dtype=int)                    # position within its task
        count: dict[int, int] = {}
        for k, task in enumerate(t):
            pos[k] = count.get(int(task), 0)
            count[int(task)] = pos[k] + 1
        rounds = pos // int(per_task)
        lead = {}                                            # (round, task) -> first place
        for k, key in enumerate(zip(rounds, t, strict=True)):
            lead.setdefault(key, k)
        first = np.array([lead[key] for key in zip(rounds, t, strict=True)])
        keep = np.lexsort((np.arange(len(t)), first, rounds))
        t, m = t[keep], m[keep]
    return np.stack([t, m], axis=1)


def next_batch(pred_log, measured_log, candidates, sigma, size: int,
               threshold: float | None = None, per_task: int | None = PER_TASK) -> np.ndarray:
    """The ``size`` cells to measure next [k, 2] (fewer when fewer are left).

    With ``threshold``, tasks already decided at that confidence contribute no cell.
    """
    scores = cell_scores(pred_log, measured_log, candidates, sigma)
    if threshold is not None:
        settled = decided(pred_log, measured_log, candidates, sigma, threshold)
        scores[settled] = np.nan
    return rank_cells(scores, per_task)[:max(int(size), 0)]
