"""Active campaigns: which of its cells a campaign with `strategy: active` offers next.

A full campaign offers every cell. An active one offers a *batch*: per hardware class,
the cells :mod:`metainf.selector.active` ranks highest under the serving model (expected
regret reduction from its intervals, a task's choice and its closest rival together),
about :attr:`ActiveConfig.batch_share` of the class's cells at a time. When every cell of
the batch has an outcome (workers of the class wait meanwhile), the coordinator's
retrainer is asked to train a new version (`on_batch`) and the next batch is ranked: by
the new version once it is promoted; until then by the serving model, with the new
measurements in place of its predictions for the measured cells (a retraining takes
longer than a lease may wait).

The campaign stops, its pending cells marked ``skipped`` with the reason, when it has
leased ``max_cells`` cells or when every task of every bound class is decided (its
choice holds with confidence >= the grid's ``confidence``). Without a serving model it
offers its cells in grid order, in batches, and stops only at ``max_cells``.
Within a batch the scheduler's usual order applies (warm engine first).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from metainf.coordinator.cell_select import cell_candidates
from metainf.coordinator.store import Store
from metainf.p import FINAL_STATUSES, METRIC_COLUMNS

if TYPE_CHECKING:
    from metainf.selector.artifact import TrainedModel

log = logging.getLogger(__name__)

SKIPPED = "skipped"
"""Status of a cell an active campaign decided not to measure (final, no result)."""

@dataclass(frozen=True)
class ActiveConfig:
    """How an active campaign batches its cells."""

    batch_share: float = 0.05
    """Share of a class's cells ranked per batch (at least :attr:`min_batch`)."""
    min_batch: int = 2


@dataclass
class _Plan:
    """The current batch of one (campaign, hardware class)."""

    cells: set[str] = field(default_factory=set)
    number: int = 0
    model_version: str = ""
    reported: bool = True
    """Whether the retrainer was told this batch finished (or there is nothing to tell)."""


def _grid(store: Store, campaign_id: str) -> dict[str, Any]:
    return json.loads(store.campaign(campaign_id)["grid_json"])


def is_active(grid: dict[str, Any]) -> bool:
    """Whether a stored grid asks for an active campaign."""
    return grid.get("strategy", "full") == "active"


def task_key(cell: dict[str, Any]) -> tuple:
    """The task of a cell within its hardware class: model, workload, batch size."""
    return (cell["model"], cell["workload_label"], int(cell["batch_size"]))


def predict_task(model: TrainedModel, cell: dict[str, Any], label: str,
                 profile: dict[str, Any], methods: list[str]):
    """Select's candidates for one task of a class (each method on that hardware), or None
    when the model cannot answer for it."""
    return cell_candidates(model, cell, label, profile, methods)


def rank_class(model: TrainedModel | None, cells: list[dict[str, Any]],
               measured: dict[str, float], label: str, profile: dict[str, Any],
               size: int, threshold: float) -> tuple[list[str], bool]:
    """The next batch of one class's cells (cell ids, best first) and whether every task
    is decided. ``measured`` maps a cell id to its measured metric (median of its done
    repetitions); pending cells are the ones to rank."""
    from metainf.selector import active
    from metainf.selector.trust import Z80

    pending = [c for c in cells if c["status"] == "pending"]
    if model is None:
        return [c["cell_id"] for c in sorted(pending, key=lambda c: c["seq"])[:size]], False
    tasks = list(dict.fromkeys(task_key(c) for c in cells))
    methods = list(dict.fromkeys(c["method"] for c in cells))
    t_pos = {t: i for i, t in enumerate(tasks)}
    m_pos = {m: j for j, m in enumerate(methods)}
    shape = (len(tasks), len(methods))
    pred = np.full(shape, np.nan)
    known = np.full(shape, np.nan)
    cand = np.zeros(shape, dtype=bool)
    half = np.full(len(tasks), np.nan)
    by_pair: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for c in cells:
        i, j = t_pos[task_key(c)], m_pos[c["method"]]
        by_pair.setdefault((i, j), []).append(c)
    for (i, j), copies in by_pair.items():
        values = [measured[c["cell_id"]] for c in copies if c["cell_id"] in measured]
        failed = all(c["status"] in FINAL_STATUSES and c["cell_id"] not in measured
                     for c in copies)
        cand[i, j] = not failed   # a method that failed or ran out of memory is no choice
        if values:
            v = float(np.median(values))
            known[i, j] = math.log(v) if model.minimize else -math.log(v)
    first = {}
    for c in cells:
        first.setdefault(task_key(c), c)
    for t, i in t_pos.items():
        cands = predict_task(model, first[t], label, profile, methods)
        for cd in cands or ():
            j = m_pos.get(cd.method)
            if j is None or not (cd.predicted > 0 and math.isfinite(cd.predicted)):
                continue
            pred[i, j] = math.log(cd.predicted) if model.minimize else -math.log(cd.predicted)
            if cd.interval and cd.interval[1] > cd.predicted:
                half[i] = math.log(cd.interval[1] / cd.predicted)
    unknown = cand & ~np.isfinite(pred) & ~np.isfinite(known)
    pred = np.where(np.isfinite(pred), pred, np.nanmax(np.r_[pred[np.isfinite(pred)], 0.0]))
    rank_err = float(model.selector.ranking_error()) if hasattr(
        model.selector, "ranking_error") else 0.0
    sigma = (np.full(len(tasks), rank_err / Z80) if rank_err > 0 else
             np.where(np.isfinite(half), half, active.UNCALIBRATED_HALF_WIDTH) / Z80)
    settled = active.decided(pred, known, cand, sigma, threshold) & ~unknown.any(axis=1)
    open_pairs = {(t_pos[task_key(c)], m_pos[c["method"]]) for c in pending}
    scores = active.cell_scores(pred, known, cand, sigma)
    mask = np.zeros(shape, dtype=bool)
    for i, j in open_pairs:
        mask[i, j] = True
    scores = np.where(mask & ~settled[:, None], scores, np.nan)
    chosen: list[str] = []
    pairs = active.rank_cells(scores)
    for i, j in pairs:
        chosen += [c["cell_id"] for c in by_pair[(int(i), int(j))] if c["status"] == "pending"]
        if len(chosen) >= size:
            break
    every_open_decided = bool(open_pairs) and all(settled[i] for i, _ in open_pairs)
    return chosen, every_open_decided


class ActivePlanner:
    """Keeps each active campaign's current batch per hardware class, and stops it."""

    def __init__(self, store: Store, model: Callable[[], TrainedModel | None],
                 config: ActiveConfig = ActiveConfig(),
                 on_batch: Callable[[str], None] | None = None):
        self.store = store
        self.config = config
        self._model = model
        self._on_batch = on_batch
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._grids: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _grid(self, campaign_id: str) -> dict[str, Any]:
        if campaign_id not in self._grids:
            self._grids[campaign_id] = _grid(self.store, campaign_id)
        return self._grids[campaign_id]

    def filter(self, pending: list[dict[str, Any]], worker: dict[str, Any]
               ) -> list[dict[str, Any]]:
        """The pending cells this worker may lease now: every cell of a full campaign, the
        current batch of an active one (whose stop conditions are checked first)."""
        out, allowed = [], {}
        for c in pending:
            cid = c["campaign_id"]
            if not is_active(self._grid(cid)):
                out.append(c)
                continue
            if cid not in allowed:
                allowed[cid] = self.batch(cid, worker)
            if c["cell_id"] in allowed[cid]:
                out.append(c)
        return out

    def batch(self, campaign_id: str, worker: dict[str, Any]) -> set[str]:
        """The cells of a campaign's current batch on the worker's class left to lease
        (ranking the next one once every cell of it has an outcome); empty while its last
        cells run, and once the campaign stopped."""
        grid = self._grid(campaign_id)
        class_id = worker["class_id"]
        with self._lock:
            if self._at_max_cells(campaign_id, grid):
                return set()
            cells = self.store.query(
                "SELECT cell_id, model, method, workload_label, workload_json, batch_size, "
                "replica, seq, status FROM cells WHERE campaign_id=? AND class_id=?",
                (campaign_id, class_id))
            status = {c["cell_id"]: c["status"] for c in cells}
            plan = self._plans.setdefault((campaign_id, class_id), _Plan())
            if not plan.reported and all(status.get(x) in (*FINAL_STATUSES, SKIPPED)
                                         for x in plan.cells):
                plan.reported = True
                if self._on_batch is not None:
                    self._on_batch(f"active campaign {campaign_id}: batch {plan.number} done")
            if any(status.get(x) == "pending" for x in plan.cells):
                return {x for x in plan.cells if status.get(x) == "pending"}
            if any(status.get(x) == "leased" for x in plan.cells):
                return set()   # the next batch is ranked on this one's measurements
            return self._next(campaign_id, grid, worker, cells, plan)

    def _at_max_cells(self, campaign_id: str, grid: dict[str, Any]) -> bool:
        limit = grid.get("max_cells")
        if not limit:
            return False
        counts = self.store.cell_counts(campaign_id)
        started = sum(n for s, n in counts.items() if s not in ("pending", SKIPPED))
        if started < limit:
            return False
        if counts.get("pending"):
            self._skip(campaign_id, f"skipped: the active campaign reached max_cells {limit}")
        return True

    def _next(self, campaign_id: str, grid: dict[str, Any], worker: dict[str, Any],
              cells: list[dict[str, Any]], plan: _Plan) -> set[str]:
        pending = [c for c in cells if c["status"] == "pending"]
        if not pending:
            return set()
        size = max(self.config.min_batch, math.ceil(self.config.batch_share * len(cells)))
        if grid.get("max_cells"):
            counts = self.store.cell_counts(campaign_id)
            started = sum(n for s, n in counts.items() if s not in ("pending", SKIPPED))
            size = max(1, min(size, int(grid["max_cells"]) - started))
        model = self._model()
        measured = self._measured(campaign_id, worker["class_id"], model)
        threshold = float(grid.get("confidence", 0.9))
        chosen, settled = rank_class(model, cells, measured, worker["hardware_label"],
                                     json.loads(worker["profile_json"]), size, threshold)
        if model is not None and settled and self._all_classes_settled(campaign_id,
                                                                       worker["class_id"]):
            self._skip(campaign_id, f"skipped: every task of the active campaign is decided "
                                    f"at confidence >= {threshold:g}")
            return set()
        plan.cells, plan.number = set(chosen), plan.number + 1
        plan.model_version = model.version if model is not None else ""
        plan.reported = not chosen
        log.info("active campaign %s, class %s: batch %d of %d cells ranked by %s",
                 campaign_id, worker["class_id"], plan.number, len(chosen),
                 f"model {plan.model_version}" if model is not None else
                 "grid order (no model serves)")
        return set(chosen)

    def _all_classes_settled(self, campaign_id: str, class_id: str) -> bool:
        """Whether the other bound classes have no cell left to lease (their tasks were
        decided, or all measured) so the campaign as a whole may stop."""
        rows = self.store.query(
            "SELECT COUNT(*) AS n FROM cells WHERE campaign_id=? AND class_id!=? AND "
            "status IN ('pending','leased')", (campaign_id, class_id))
        return rows[0]["n"] == 0

    def _measured(self, campaign_id: str, class_id: str, model) -> dict[str, float]:
        """Median measured metric of each done cell of a class (the model's metric)."""
        metric = model.metric if model is not None else "runtime_s"
        if metric not in METRIC_COLUMNS:   # a model of an external table's metric
            return {}
        rows = self.store.query(
            f"SELECT r.cell_id, r.{metric} AS v FROM results r JOIN cells c USING (cell_id) "
            f"WHERE c.campaign_id=? AND c.class_id=? AND r.status='done' AND r.accepted=1",
            (campaign_id, class_id))
        values: dict[str, list[float]] = {}
        for r in rows:
            if r["v"] is not None and r["v"] > 0:
                values.setdefault(r["cell_id"], []).append(float(r["v"]))
        return {k: float(np.median(v)) for k, v in values.items()}

    def _skip(self, campaign_id: str, reason: str) -> None:
        n = self.store.skip_pending(campaign_id, reason)
        if n:
            log.info("active campaign %s stopped: %d cell(s) %s", campaign_id, n, reason)
