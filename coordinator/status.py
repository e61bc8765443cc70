"""The farm's state as plain data: campaign progress and ETA, worker liveness, recent failures."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from metainf.coordinator.scheduler import SchedulerConfig, campaign_done, lost_after_s
from metainf.coordinator.store import Store
from metainf.p import FINAL_STATUSES

CELL_STATES = ("pending", "leased", *FINAL_STATUSES, "skipped")
"""Every status a cell can have, queue first."""

WORKER_STATES = ("alive", "lost", "quarantined")
"""Every state a worker can be shown in."""


def campaign_progress(store: Store, campaign_id: str) -> dict[str, Any]:
    """One campaign's state, cell counts, per-worker progress and ETA.

    Keys match the fields of the CampaignStatus message (``workers`` holds dicts with
    the fields of WorkerProgress), plus ``finished``: cells with a final outcome.
    ``eta_s`` is -1 when unknown (no cell finished yet) and 0 when nothing remains.
    Raises store.NotFound for an unknown id.
    """
    campaign = store.campaign(campaign_id)
    cid = campaign["campaign_id"]
    counts = store.cell_counts(cid)
    total = sum(counts.values())
    if campaign_done(store, cid):
        state = "done"
    elif counts.get("leased", 0) or any(counts.get(s, 0) for s in FINAL_STATUSES):
        state = "running"
    else:
        state = "queued"
    workers = worker_progress(store, cid)
    remaining = counts.get("pending", 0) + counts.get("leased", 0)
    durations = store.cell_durations(cid)
    active = max(1, sum(1 for w in workers if w["current_cell"]))
    eta = statistics.median(durations) * remaining / active if durations else -1.0
    labels = {h["class_id"]: h["label"] for h in store.hardware_classes()}
    return {
        "campaign_id": cid, "name": campaign["name"], "state": state, "cells": counts,
        "total_cells": total, "finished": sum(counts.get(s, 0) for s in FINAL_STATUSES),
        "workers": workers, "eta_s": eta if remaining else 0.0,
        "hardware_classes": [labels[c] for c in store.bound_classes(cid)],
        "created_at": campaign["created_at"],
        "replica_groups": store.replica_groups(cid),
        **strategy_fields(store, campaign),
    }


def strategy_fields(store: Store, campaign: dict[str, Any]) -> dict[str, str]:
    """A campaign's strategy and, for an active one, its limits or why it stopped."""
    grid = json.loads(campaign["grid_json"])
    strategy = grid.get("strategy", "full")
    if strategy != "active":
        return {"strategy": strategy, "strategy_note": ""}
    stopped = store.query("SELECT DISTINCT error FROM cells WHERE campaign_id=? AND "
                          "status='skipped' LIMIT 1", (campaign["campaign_id"],))
    if stopped:
        return {"strategy": strategy, "strategy_note": stopped[0]["error"]}
    limit = f"up to {grid['max_cells']} cells" if grid.get("max_cells") else "no cell limit"
    return {"strategy": strategy, "strategy_note": (
        f"active: {limit}; stops when every task is decided at confidence >= "
        f"{grid.get('confidence', 0.9):g}")}


def worker_progress(store: Store, campaign_id: str) -> list[dict[str, Any]]:
    """Workers that finished or hold cells of a campaign, with their counts."""
    done = {r["worker_id"]: r["n"] for r in store.query(
        "SELECT worker_id, COUNT(*) AS n FROM cells WHERE campaign_id=? AND status IN "
        "('done','failed','oom','timeout') GROUP BY worker_id", (campaign_id,))}
    current = {r["worker_id"]: r["cell_id"] for r in store.query(
        "SELECT worker_id, cell_id FROM cells WHERE campaign_id=? AND status='leased'",
        (campaign_id,))}
    out = []
    for w in store.workers():
        wid = w["worker_id"]
        if wid in done or wid in current:
            out.append({"worker_id": wid, "name": w["name"],
                        "hardware_label": w["hardware_label"],
                        "cells_done": done.get(wid, 0), "current_cell": current.get(wid, "")})
    return out


def worker_state(worker: dict[str, Any], now: float, config: SchedulerConfig) -> str:
    """alive, lost (no heartbeat within the timeout) or quarantined."""
    if worker.get("quarantined"):
        return "quarantined"
    return "alive" if now - worker["last_heartbeat"] < lost_after_s(config) else "lost"


def worker_states(store: Store, config: SchedulerConfig | None = None,
                  now: float | None = None) -> list[dict[str, Any]]:
    """Every worker with its hardware label, state, current cell and heartbeat age."""
    config = config or SchedulerConfig()
    now = time.time() if now is None else now
    return [{
        "worker_id": w["worker_id"], "name": w["name"], "hardware_class": w["class_id"],
        "hardware_label": w["hardware_label"], "price_per_hour": w["price_per_hour"],
        "state": worker_state(w, now, config), "current_cell": w["current_cell"] or "",
        "last_heartbeat": w["last_heartbeat"],
        "heartbeat_age_s": max(0.0, now - w["last_heartbeat"]),
        "engine_version": w["engine_version"], "operator": w["operator"],
    } for w in store.workers()]


def cells_by_state(store: Store) -> dict[str, int]:
    """Cells of every campaign by status (every known status present, 0 when none)."""
    counts = dict.fromkeys(CELL_STATES, 0)
    for r in store.query("SELECT status, COUNT(*) AS n FROM cells GROUP BY status"):
        counts[r["status"]] = r["n"]
    return counts


def recent_failures(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The latest cells that failed, final or queued for a retry, newest first.

    A cell keeps the error of its last failed attempt; ``status`` is ``failed``, ``oom``
    or ``timeout`` when final and ``pending``/``leased`` while it is being retried.
    """
    return store.query(
        "SELECT c.cell_id, c.campaign_id, c.model, c.method, c.workload_label AS workload, "
        "c.batch_size, h.label AS hardware, c.status, c.attempts, c.error, "
        "COALESCE(c.finished_at, c.started_at) AS at FROM cells c "
        "LEFT JOIN hardware_classes h ON h.class_id = c.class_id "
        "WHERE c.error != '' OR c.status IN ('failed','oom','timeout') "
        "ORDER BY at DESC LIMIT ?", (int(limit),))
