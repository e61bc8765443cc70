"""Metrics of a selector (DESIGN.md), per test task and then pooled over tasks.

Everything is computed on a cost where lower is better. A task's candidates are the
methods measured for it; tasks with fewer than two candidates have nothing to choose
and are left out of the averages (counted as ``n_single``). Definitions:

- selection: the candidate with the lowest predicted cost (non-finite predictions rank
  last). With ``restrict_to_candidates=False`` the argmin over all methods is taken
  instead, and an unmeasured pick gets the task's worst cost.
- tied picks: where several candidates share the lowest predicted cost (within
  ``PREDICTION_TIE``, relative: a selector that cannot tell them apart, e.g. a
  regressor whose training never varied the method), every per-task figure below but
  mean_rank, f1_macro and level_mdape is the mean over the tied candidates, the expected
  outcome of choosing one of them at random, not the outcome of whichever the table
  happens to list first; ``n_tied`` counts them (1: no tie) and ``selected`` names the
  first.
- hit (accuracy): the selected cost is within ``TIE_TOLERANCE`` (1 %) of the best.
- f1_macro: macro F1 of selected vs true-best labels; the true-best label of a hit is
  the selected method itself, so a tie within 1 % is never counted as a confusion.
- accel_ratio: mean cost over the candidates / selected cost (oracle: mean / min).
- mean_rank: 1-based position, in the predicted ranking of the candidates, of the first
  method within 1 % of the best (1 exactly when the selection is a hit).
- regret: selected cost / best cost (>= 1).
- closed_gap: (SBS - selector) / (SBS - VBS) on the fold's total cost, where SBS is
  Global Best fitted on the training fold (mean normalised cost) and VBS the per-task
  oracle; NaN when SBS equals VBS, and NaN folds are left out of the mean over folds.
- predict_ms: wall time of one predict call divided by the number of test tasks.

Beside the strict figures, never instead of them:

- accuracy_noise, regret_noise (noise-aware): a selection among the methods the
  task's repetitions cannot tell from the best (``cobest``, a bootstrap over
  repetitions, :func:`metainf.selector.table.noise_cobest`) is a hit with regret 1;
  any other selection keeps its strict regret;
- accuracy_available, regret_available, infeasible_pick_rate (available candidates):
  the selection is made among every method measured on the task's hardware for any
  task (``available``), not only those measured for the task; a pick not measured for
  the task is an infeasible pick, a miss scored at the task's worst measured cost;
- level_mdape: median over tasks of |predicted - true| / true cost of the selected
  method, for selectors whose prediction is a cost (regressors; NaN for rankings);
- coverage_80: share of the held-out measured costs inside the selector's nominal 80 %
  interval (NaN for selectors without intervals).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from metainf.selector.baselines.scores import as_cost_table

TIE_TOLERANCE = 0.01
"""Relative cost difference under which two methods count as tied for best."""

PREDICTION_TIE = 1e-9
"""Relative difference of predicted costs under which a selector ranks methods equal."""

METRIC_COLUMNS = ("accuracy", "f1_macro", "accel_ratio", "mean_rank", "regret", "closed_gap",
                  "predict_ms", "accuracy_noise", "regret_noise", "accuracy_available",
                  "regret_available", "infeasible_pick_rate", "level_mdape", "coverage_80")
"""The selector metrics, in the order reports show them: strict first."""

HIGHER_IS_BETTER = {"accuracy": True, "f1_macro": True, "accel_ratio": True,
                    "mean_rank": False, "regret": False, "closed_gap": True,
                    "predict_ms": False, "accuracy_noise": True, "regret_noise": False,
                    "accuracy_available": True, "regret_available": False,
                    "infeasible_pick_rate": False, "level_mdape": False,
                    "coverage_80": True}
"""Direction of each metric (for one with a nominal value, the direction towards it from
below)."""

NOMINAL = {"coverage_80": 0.8}
"""Metrics judged by their distance to a nominal value: an 80 % interval that covers 99 %
is too wide, not better than one that covers 80 %."""


def merit(metric: str, values) -> np.ndarray:
    """Values of a metric column made comparable: the higher, the better."""
    v = np.asarray(values, dtype=float)
    if metric in NOMINAL:
        return -np.abs(v - NOMINAL[metric])
    return v if HIGHER_IS_BETTER[metric] else -v


def _order(pred_row: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidate method indices sorted by predicted cost, non-finite last, stable."""
    p = pred_row[candidates]
    p = np.where(np.isfinite(p), p, np.inf)
    return candidates[np.argsort(p, kind="stable")]


def _tied(pred_row: np.ndarray, pick: int, candidates: np.ndarray) -> np.ndarray:
    """The candidates predicted as cheap as the pick (the pick included, first)."""
    p = pred_row[candidates]
    if pick < 0 or not np.isfinite(pred_row[pick]):
        return np.array([pick]) if pick >= 0 else np.zeros(0, dtype=int)
    same = np.isfinite(p) & (np.abs(p - pred_row[pick])
                             <= PREDICTION_TIE * max(abs(pred_row[pick]), 1e-300))
    others = candidates[same & (candidates != pick)]
    return np.concatenate([[pick], others]).astype(int)


def sbs_choice(C: np.ndarray, sbs_scores: np.ndarray) -> np.ndarray:
    """Global Best's pick per task: the candidate with the lowest SBS score (-1: no candidate)."""
    C = as_cost_table(C)
    picks = np.full(C.shape[0], -1)
    for i, row in enumerate(C):
        cand = np.flatnonzero(np.isfinite(row))
        if cand.size:
            picks[i] = _order(np.asarray(sbs_scores, dtype=float), cand)[0]
    return picks


def task_outcomes(C, pred, methods: Sequence[str], *, sbs_scores=None,
                  restrict_to_candidates: bool = True, tol: float = TIE_TOLERANCE,
                  predict_ms: float = float("nan"), cobest=None,
                  available=None, level: bool = False, interval=None) -> pd.DataFrame:
    """One row per test task: what was selected, what was best, and the per-task metrics.

    ``C`` is the true cost [n, m] (NaN = unmeasured), ``pred`` the predicted cost [n, m],
    ``sbs_scores`` Global Best's training scores [m] (needed for closed_gap), ``cobest``
    the noise-aware co-best methods [n, m] (None: the strict truth) and ``available``
    the methods measured on each task's hardware [n, m] (None: the task's candidates);
    ``level`` says ``pred`` is a cost estimate, ``interval`` is its (low, high) [n, m].
    """
    C = as_cost_table(C)
    pred = np.asarray(pred, dtype=float)
    if pred.shape != C.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from cost shape {C.shape}")
    if len(methods) != C.shape[1]:
        raise ValueError(f"{len(methods)} method names for {C.shape[1]} cost columns")
    sbs = sbs_choice(C, sbs_scores) if sbs_scores is not None else None
    rows = []
    for i, (row, prow) in enumerate(zip(C, pred, strict=True)):
        cand = np.flatnonzero(np.isfinite(row))
        best_cost = row[cand].min() if cand.size else np.nan
        near_best = cand[row[cand] <= best_cost * (1 + tol)] if cand.size else cand
        order = _order(prow, cand)
        if restrict_to_candidates or cand.size == 0:
            sel = int(order[0]) if cand.size else -1
        else:
            sel = int(_order(prow, np.arange(row.size))[0])
        measured = sel >= 0 and np.isfinite(row[sel])
        worst = row[cand].max() if cand.size else np.nan
        tied = _tied(prow, sel, cand if restrict_to_candidates else np.arange(row.size))
        t_measured = np.isfinite(row[tied])
        t_cost = np.where(t_measured, row[tied], worst)
        sel_cost = float(t_cost.mean()) if tied.size else np.nan
        hit = float(np.mean(t_measured & np.isin(tied, near_best))) if tied.size else 0.0
        rank = int(np.flatnonzero(np.isin(order, near_best))[0]) + 1 if cand.size else 0
        true_label = (methods[sel] if measured and sel in near_best else
                      (methods[int(cand[np.argmin(row[cand])])] if cand.size else ""))
        mean_cost = row[cand].mean() if cand.size else np.nan
        co = (np.flatnonzero(cobest[i]) if cobest is not None else near_best)
        t_noise = t_measured & (np.isin(tied, co) | np.isin(tied, near_best))
        avail = np.flatnonzero(available[i]) if available is not None else cand
        avail = np.union1d(avail, cand)
        sel_av = int(_order(prow, avail)[0]) if avail.size else -1
        tied_av = _tied(prow, sel_av, avail)
        av_measured = np.isfinite(row[tied_av])
        av_cost = np.where(av_measured, row[tied_av], worst)
        rows.append({
            "task": i,
            "n_candidates": int(cand.size),
            "selected": methods[sel] if sel >= 0 else "",
            "n_tied": int(tied.size),
            "true_best": true_label,
            "selected_measured": bool(measured),
            "hit": hit,
            "cost_selected": sel_cost,
            "cost_best": best_cost,
            "cost_mean": mean_cost,
            "cost_sbs": row[sbs[i]] if sbs is not None and sbs[i] >= 0 else np.nan,
            "accel_ratio": mean_cost / sel_cost,
            "oracle_accel_ratio": mean_cost / best_cost,
            "rank_of_best": rank,
            "regret": sel_cost / best_cost,
            "predict_ms": predict_ms,
            "hit_noise": float(t_noise.mean()) if tied.size else 0.0,
            "regret_noise": (float(np.where(t_noise, 1.0, t_cost / best_cost).mean())
                             if tied.size else np.nan),
            "selected_available": methods[sel_av] if sel_av >= 0 else "",
            "hit_available": (float(np.mean(av_measured & np.isin(tied_av, near_best)))
                              if tied_av.size else 0.0),
            "regret_available": float(av_cost.mean()) / best_cost if tied_av.size else np.nan,
            "infeasible_pick": float(np.mean(~av_measured)) if tied_av.size else 0.0,
            "level_ape": (abs(prow[sel] - row[sel]) / row[sel]
                          if level and measured and np.isfinite(prow[sel]) else np.nan),
            "n_covered": (int(((interval[0][i] <= row) & (row <= interval[1][i]))[cand].sum())
                          if interval is not None else 0),
            "n_interval": int(cand.size) if interval is not None else 0,
        })
    return pd.DataFrame(rows)


def closed_gap(outcomes: pd.DataFrame) -> float:
    """(SBS - selector) / (SBS - VBS) on total cost over the scored tasks; NaN if SBS == VBS."""
    scored = outcomes[outcomes["n_candidates"] >= 2]
    sbs = scored["cost_sbs"].sum()
    vbs = scored["cost_best"].sum()
    sel = scored["cost_selected"].sum()
    gap = sbs - vbs
    if scored.empty or not np.isfinite(gap) or gap <= 1e-12 * max(abs(vbs), 1e-300):
        return float("nan")
    return float((sbs - sel) / gap)


def summarise(outcomes: pd.DataFrame, fold_col: str | None = None) -> dict:
    """Pooled metrics over the tasks of ``outcomes`` (tasks with one candidate left out).

    With ``fold_col`` the closed gap is computed per fold and averaged over the folds
    where it is defined; otherwise over all rows as one fold.
    """
    scored = outcomes[outcomes["n_candidates"] >= 2]
    n_single = int((outcomes["n_candidates"] < 2).sum())
    n_tied = int((scored["n_tied"] > 1).sum()) if "n_tied" in scored else 0
    result = {"n_tasks": len(scored), "n_single": n_single, "n_tied": n_tied}
    if scored.empty:
        result.update({k: float("nan") for k in METRIC_COLUMNS})
        result["oracle_accel_ratio"] = float("nan")
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = f1_score(scored["true_best"].astype(str), scored["selected"].astype(str),
                      average="macro", zero_division=0)
    if fold_col is None:
        gap = closed_gap(scored)
    else:
        gaps = np.array([closed_gap(g) for _, g in scored.groupby(fold_col, sort=False)])
        gap = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else float("nan")
    result.update({
        "accuracy": float(scored["hit"].mean()),
        "f1_macro": float(f1),
        "accel_ratio": float(scored["accel_ratio"].mean()),
        "mean_rank": float(scored["rank_of_best"].mean()),
        "regret": float(scored["regret"].mean()),
        "closed_gap": gap,
        "predict_ms": float(scored["predict_ms"].mean()),
        "oracle_accel_ratio": float(scored["oracle_accel_ratio"].mean()),
    })
    for column, source in (("accuracy_noise", "hit_noise"), ("regret_noise", "regret_noise"),
                           ("accuracy_available", "hit_available"),
                           ("regret_available", "regret_available"),
                           ("infeasible_pick_rate", "infeasible_pick")):
        result[column] = (float(scored[source].astype(float).mean()) if source in scored
                          else float("nan"))
    ape = scored["level_ape"].astype(float) if "level_ape" in scored else pd.Series([])
    result["level_mdape"] = float(ape.median()) if ape.notna().any() else float("nan")
    n_interval = scored["n_interval"].sum() if "n_interval" in scored else 0
    result["coverage_80"] = (float(scored["n_covered"].sum() / n_interval) if n_interval
                             else float("nan"))
    return result


def oracle_outcomes(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The same tasks answered by the virtual best solver (the per-task oracle): the ceiling."""
    o = outcomes.copy()
    o["selected"] = o["true_best"]
    o["selected_measured"] = o["n_candidates"] > 0
    o["hit"] = o["n_candidates"] > 0
    o["cost_selected"] = o["cost_best"]
    o["accel_ratio"] = o["oracle_accel_ratio"]
    o["rank_of_best"] = np.where(o["n_candidates"] > 0, 1, 0)
    o["regret"] = o["cost_best"] / o["cost_best"]
    o["predict_ms"] = 0.0
    for column in ("hit_noise", "hit_available"):
        o[column] = o["n_candidates"] > 0
    o["regret_noise"] = o["regret_available"] = o["regret"]
    o["infeasible_pick"] = False
    if "n_tied" in o:
        o["n_tied"] = 1
    o["level_ape"] = 0.0
    o["n_covered"] = o["n_interval"] = 0
    o["selected_available"] = o["true_best"]
    return o
