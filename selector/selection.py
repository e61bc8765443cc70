"""Budgeted selection (the paper's Eq. 2 / Algorithm 2) over methods and hardware options.

Every candidate (method x hardware) is scored in one vectorised prediction; cost is the
hardware's price per hour times the predicted runtime (for a higher-is-better table such
as throughput: price per unit of work). Memory fit is a hard constraint: a candidate
whose model weights and KV cache do not fit in the hardware's memory (times its count,
less the margin, :mod:`metainf.memory`) is never chosen; candidates over the budget are
dropped too, and the best of the rest by the objective wins. Each infeasible candidate
says why in `reason`. Nothing within budget is an answer, not an error: it names the
cheapest candidate that fits; nothing that fits is an answer too, with no choice and a
message. Hardware never seen in training gets the methods measured on its nearest known
hardware (cosine of description embeddings).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metainf.selector.artifact import TrainedModel
from metainf.selector.fit import candidate_fits, margin_of, model_memory_of
from metainf.selector.query import (
    SelectionError,
    SelectQuery,
    check_query,
    resolve_hardware,
    resolve_methods,
    resolve_model,
    resolve_workload,
)
from metainf.selector.trust import (
    Z80,
    AxisDistance,
    axis_threshold,
    confidence,
    nearest,
    widened,
)


@dataclass(frozen=True)
class Candidate:
    """One scored (method, hardware) pair; `reason` says why it is infeasible."""

    method: str
    hardware: str
    predicted: float
    cost: float
    feasible: bool
    reason: str = ""
    count: int = 1
    interval: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN cost becomes null; `count` only where more than one)."""
        out = {"method": self.method, "hardware": self.hardware,
               "predicted": _json_num(self.predicted), "cost": _json_num(self.cost),
               "feasible": self.feasible, "reason": self.reason,
               "interval": ([_json_num(v) for v in self.interval] if self.interval
                            else None)}
        if self.count > 1:
            out["count"] = self.count
        return out


def _json_num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass
class Selection:
    """The answer of a Select: the choice, every candidate, feasibility and provenance."""

    method: str
    hardware: str
    feasible: bool
    model_version: str
    candidates: list[Candidate]
    nearest_known_hardware: dict[str, str] = field(default_factory=dict)
    metric: str = "runtime_s"
    lower_is_better: bool = True
    objective: str = "runtime"
    budget: float | None = None
    message: str = ""
    memory_margin: float | None = None
    confidence: float | None = None
    out_of_distribution: bool = False
    ood_axes: list[str] = field(default_factory=list)
    distances: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `select --json` object of DESIGN.md's output contract."""
        return {"method": self.method, "hardware": self.hardware, "feasible": self.feasible,
                "model_version": self.model_version, "confidence": self.confidence,
                "out_of_distribution": self.out_of_distribution,
                "ood_axes": list(self.ood_axes), "distances": list(self.distances),
                "candidates": [c.to_dict() for c in self.candidates],
                "nearest_known_hardware": dict(self.nearest_known_hardware),
                "metric": self.metric, "lower_is_better": self.lower_is_better,
                "objective": self.objective, "budget": self.budget, "message": self.message,
                "memory_margin": self.memory_margin}

    def to_json(self) -> str:
        """One JSON object (see to_dict)."""
        return json.dumps(self.to_dict(), indent=2)


PREDICTION_CACHE_ROWS = 32768
"""Feature rows whose predicted log cost a loaded model remembers (about 20 MB at most)."""


def predict_log_cost(model: TrainedModel, features: np.ndarray) -> np.ndarray:
    """The regressor's log cost of each [task, method] feature row, cached by row.

    Select's questions repeat (the same tasks and methods), and XGBoost's per-call
    overhead (~0.3 ms for a handful of rows) was most of a known-entity Select's CPU
    time; rows seen before are answered from a cache keyed by their exact feature bytes
    (a row's prediction depends on that row alone), the rest are predicted in one call.
    """
    cache = model.cache.get("predictions")
    if cache is None:
        cache = model.cache.setdefault("predictions", {})
    rows = np.ascontiguousarray(features, dtype=np.float64)
    keys = [r.tobytes() for r in rows]
    out = np.array([cache.get(k, np.nan) for k in keys], dtype=float)
    todo = np.flatnonzero(np.isnan(out))
    if len(todo):
        out[todo] = model.selector.predict_rows(rows[todo]).reshape(-1)
        if len(cache) + len(todo) > PREDICTION_CACHE_ROWS:
            cache.clear()
        for i in todo:
            cache[keys[i]] = float(out[i])
    return out


def select(model: TrainedModel, query: SelectQuery) -> Selection:
    """Score every (method, hardware) candidate at once and return the best within budget."""
    check_query(query)
    budget = float(query.budget) if query.budget is not None else None
    m_entity = resolve_model(model, query)
    w_entity = resolve_workload(model, query.workload, m_entity)
    asked = resolve_methods(model, query.methods) if query.methods else None
    options = resolve_hardware(model, query.hardware)

    featurizer = model.featurizer
    anchored = query.unseen == "anchored"
    rows = []
    for opt in options:
        row = {"workload": w_entity}
        if m_entity is not None:
            row["model"] = m_entity
        if opt.entity is not None:
            row["hardware"] = opt.entity
        rows.append(row)
    # An unseen option is also scored as its nearest known hardware (its anchor row).
    anchor_of: dict[int, int] = {}
    if anchored:
        for i, opt in enumerate(options):
            if opt.nearest:
                anchor_of[i] = len(rows)
                rows.append({**rows[i], "hardware": model.known["hardware"][opt.nearest]})
    X = featurizer.transform_entities(rows)

    method_pos = {m: i for i, m in enumerate(model.methods)}
    pairs: list[tuple[int, str]] = []
    for i, opt in enumerate(options):
        for m in (asked if asked is not None else opt.methods):
            pairs.append((i, m))
    if not pairs:
        raise SelectionError("methods", "no candidate method: the hardware has no measured "
                                        "method; name candidates with --methods")
    anchor_pairs = [(anchor_of[i], m) for i, m in pairs if i in anchor_of]
    new_methods = sorted({m for _, m in pairs if m not in method_pos})
    M = model.method_features
    if new_methods:
        M = np.vstack([M, featurizer.transform_methods(new_methods)])
        method_pos = {**method_pos, **{m: len(model.methods) + j
                                       for j, m in enumerate(new_methods)}}
    scored = pairs + anchor_pairs
    hw_idx = np.array([i for i, _ in scored])
    m_idx = np.array([method_pos[m] for _, m in scored])
    log_cost = predict_log_cost(model, np.hstack([X[hw_idx], M[m_idx]]))
    own, anchor = log_cost[:len(pairs)].copy(), log_cost[len(pairs):]
    if anchor_of:
        pair_hw = np.array([i for i, _ in pairs])
        anchor_hw = np.array([i for i, _ in pairs if i in anchor_of])
        for i in anchor_of:
            mine, theirs = pair_hw == i, anchor_hw == i
            # Ranking of the nearest known hardware, level predicted for the unseen one.
            shift = float(np.mean(own[mine] - anchor[theirs]))
            own[mine] = anchor[theirs] + shift
    pred_cost = np.exp(own)
    predicted = pred_cost if model.minimize else 1.0 / pred_cost
    # How far to trust it: out-of-distribution axes, an interval per candidate.
    axes = _distances(model, w_entity, m_entity, options)
    calibrated = model.selector.interval_half_width(X[:len(options)])
    half_opt = np.array([widened(float(calibrated[i]), axes[i]) for i in range(len(options))])
    pair_opt = np.array([i for i, _ in pairs])
    half = half_opt[pair_opt]
    cost_lo, cost_hi = np.exp(own - half), np.exp(own + half)
    calibrated = bool(np.isfinite(half).all())

    prices = np.array([np.nan if options[i].price is None else options[i].price
                       for i, _ in pairs], dtype=float)
    # Runtime in seconds -> price x hours; throughput per second -> price per unit of work.
    money = prices * pred_cost / 3600.0
    if budget is not None and np.isnan(money).any():
        unpriced = sorted({options[i].label for i, _ in pairs if options[i].price is None})
        raise SelectionError("hardware", f"no price known for {unpriced}: give "
                                         "price_per_hour to compare against the budget")
    # Within budget at the upper end of the interval unless the caller takes the risk.
    money_hi = prices * cost_hi / 3600.0 if calibrated else money
    at_risk = money_hi if query.risk == "upper" else money
    within = np.ones(len(pairs), dtype=bool) if budget is None else at_risk <= budget
    # Memory fit: weights + KV cache of the workload against memory x count less the margin.
    margin = margin_of(model).margin
    fit = candidate_fits(model, model_memory_of(model, query.model.strip(),
                                                query.model_text.strip()),
                         w_entity, options, pairs, margin)
    fits = np.array([f is None or f.fits for f in fit], dtype=bool)
    feasible = fits & within
    reasons = []
    for j in range(len(pairs)):
        parts = [] if fits[j] else [fit[j].reason()]
        if not within[j]:
            upper = f" (upper end of its interval {at_risk[j]:.4g})" if (
                query.risk == "upper" and calibrated) else ""
            parts.append(f"over budget: cost {money[j]:.4g}{upper} > budget {budget:g}")
        reasons.append("; ".join(parts))
    if query.objective == "cost":
        if np.isnan(money).all():
            raise SelectionError("objective", "cost needs a price per hour for the hardware")
        key = np.where(np.isnan(money), np.inf, money)
    else:
        key = pred_cost
    order = np.lexsort((key, ~fits, ~feasible))
    metric_lo, metric_hi = ((cost_lo, cost_hi) if model.minimize
                            else (1.0 / cost_hi, 1.0 / cost_lo))
    candidates = [Candidate(method=pairs[j][1], hardware=options[pairs[j][0]].label,
                            predicted=float(predicted[j]), cost=float(money[j]),
                            feasible=bool(feasible[j]), reason=reasons[j],
                            count=options[pairs[j][0]].count,
                            interval=((float(metric_lo[j]), float(metric_hi[j]))
                                      if calibrated else None)) for j in order]
    unit = model.metric
    too_big = sorted({options[i].label for k, (i, _) in enumerate(pairs) if not fits[k]})
    note = (f"; {', '.join(too_big)}: too little memory" if too_big else "")
    if feasible.any():
        best = candidates[0]
        ok = True
        message = (f"best by {query.objective}: {best.method} on {best.hardware or 'the table'}"
                   f" (predicted {unit} {best.predicted:.4g}"
                   + (f", cost {best.cost:.4g}" if math.isfinite(best.cost) else "") + ")"
                   + note)
    elif fits.any():
        j = int(np.nanargmin(np.where(fits, money, np.nan)))
        best = Candidate(pairs[j][1], options[pairs[j][0]].label, float(predicted[j]),
                         float(money[j]), False, reasons[j], options[pairs[j][0]].count)
        ok = False
        message = (f"no candidate fits the budget {budget:g}: the cheapest is {best.method} on "
                   f"{best.hardware} at cost {best.cost:.4g}" + note)
    else:
        # Nothing fits in memory: no choice (never an infeasible one), and why, in numbers.
        roomiest = max(range(len(pairs)), key=lambda k: fit[k].usable_gib)
        best = Candidate("", "", math.nan, math.nan, False)
        ok = False
        message = (f"nothing fits in memory: no hardware option holds this model and "
                   f"workload; the roomiest, {options[pairs[roomiest][0]].label}, "
                   f"{fit[roomiest].reason()}")
    nearest = {o.label: o.nearest for o in options if o.nearest}
    conf = None
    if calibrated and best.method:
        chosen = order[0] if feasible.any() else j
        eligible = feasible if feasible.any() else fits
        key_log = np.log(np.where(np.isfinite(key), key, np.inf))
        # the ranking is extrapolated as far as the level: its error widens alike
        rank_error = model.selector.ranking_error()
        rank_half = np.array([widened(rank_error, axes[i])
                              for i in range(len(options))])[pair_opt]
        conf = confidence(key_log, half / Z80, rank_half / Z80, pair_opt, int(chosen),
                          eligible)
    chosen_axes = axes[pairs[order[0]][0]] if best.method else [d for a in axes for d in a]
    ood_axes = sorted({d.axis for d in chosen_axes if d.out_of_distribution})
    if ood_axes:
        message += (f"; out of distribution on {', '.join(ood_axes)}: "
                    + ", ".join(f"nearest known {d.axis} {d.nearest!r} at {d.distance:.3g} "
                                f"(threshold {d.threshold:.3g})"
                                for d in chosen_axes if d.out_of_distribution))
    return Selection(method=best.method, hardware=best.hardware, feasible=ok,
                     model_version=model.version, candidates=candidates,
                     nearest_known_hardware=nearest, metric=model.metric,
                     lower_is_better=model.minimize, objective=query.objective,
                     budget=budget, message=message, memory_margin=margin,
                     confidence=conf, out_of_distribution=bool(ood_axes), ood_axes=ood_axes,
                     distances=[d.to_dict() for d in chosen_axes])


def _known_vectors(model: TrainedModel, axis: str) -> tuple[list[str], np.ndarray, float]:
    """The features of every known entity of an axis, and its out-of-distribution
    threshold (cached on the loaded model)."""
    cache = model.cache.setdefault("known_vectors", {})
    if axis not in cache:
        entities = list(model.known[axis].values())
        encoder = model.featurizer.encoders_[axis]
        vectors = encoder.transform(entities, model.featurizer.embedder_)
        cache[axis] = ([e.label for e in entities], vectors, axis_threshold(vectors))
    return cache[axis]


def _distances(model: TrainedModel, workload, model_entity, options) -> list[list[AxisDistance]]:
    """Per hardware option, the distance of the query to what training saw, per axis."""
    encoders = model.featurizer.encoders_
    shared = []
    for axis, entity in (("workload", workload), ("model", model_entity)):
        if entity is None or axis not in encoders or not model.known.get(axis):
            continue
        names, known, threshold = _known_vectors(model, axis)
        i, d = nearest(encoders[axis].transform([entity], model.featurizer.embedder_)[0],
                       known)
        shared.append(AxisDistance(axis, names[i], d, threshold))
    out = []
    for opt in options:
        own = list(shared)
        if opt.entity is not None and "hardware" in encoders and model.known.get("hardware"):
            names, known, threshold = _known_vectors(model, "hardware")
            vec = encoders["hardware"].transform([opt.entity], model.featurizer.embedder_)[0]
            i, d = nearest(vec, known)
            own.append(AxisDistance("hardware", names[i], d, threshold))
        out.append(own)
    return out
