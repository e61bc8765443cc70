"""Which cell a worker runs next: late binding of campaigns and warm-engine locality."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metainf.coordinator.replication import group_id
from metainf.coordinator.store import Lease, Store
from metainf.grid import cell_id as template_cell_id
from metainf.grid import template, validate_grid
from metainf.p import FINAL_STATUSES

if TYPE_CHECKING:
    from metainf.coordinator.active import ActivePlanner


@dataclass(frozen=True)
class SchedulerConfig:
    """Lease and retry settings of the coordinator."""

    lease_s: float = 30.0
    heartbeat_interval_s: float = 10.0
    max_attempts: int = 3
    idle_retry_s: float = 2.0
    quarantine_after: int = 3
    """Implausible results after which a worker gets no more cells."""


def lost_after_s(config: SchedulerConfig) -> float:
    """Seconds without a heartbeat after which a worker counts as lost."""
    return 3 * config.heartbeat_interval_s + config.lease_s


def campaign_matches(grid: dict[str, Any], worker: dict[str, Any]) -> bool:
    """Whether a campaign's `hardware` selects this worker's class."""
    wanted = grid.get("hardware", "all")
    if wanted == "all":
        return True
    return bool({worker["name"], worker["hardware_label"], worker["class_id"]} & set(wanted))


CLOSED_STATUSES = (*FINAL_STATUSES, "skipped")
"""Cell statuses that need nothing more: a final outcome, or skipped by an active campaign."""


def campaign_done(store: Store, campaign_id: str) -> bool:
    """True when at least one class is bound and every cell has a final outcome (or was
    skipped by an active campaign that stopped)."""
    counts = store.cell_counts(campaign_id)
    total = sum(counts.values())
    return total > 0 and sum(counts.get(s, 0) for s in CLOSED_STATUSES) == total


def bind_campaigns(store: Store, worker: dict[str, Any]) -> list[str]:
    """Give the worker's hardware class the grid of every open campaign that selects it.

    Returns the ids of the open campaigns this worker may take cells from.
    """
    open_ids = []
    for campaign in store.campaigns():
        grid = json.loads(campaign["grid_json"])
        if not campaign_matches(grid, worker):
            continue
        cid = campaign["campaign_id"]
        bound = store.bound_classes(cid)
        if worker["class_id"] in bound:
            if not campaign_done(store, cid):
                open_ids.append(cid)
            continue
        if bound and campaign_done(store, cid):
            continue  # a finished campaign takes no new hardware
        cells = cell_rows(campaign, worker["class_id"])
        store.bind_class(cid, worker["class_id"], cells)
        open_ids.append(cid)
    return open_ids


def cell_rows(campaign: dict[str, Any], class_id: str) -> list[dict[str, Any]]:
    """The rows of a campaign's cells for one hardware class, in grid order, from the
    template stored at submit (a campaign stored before templates expands its grid)."""
    campaign_id = campaign["campaign_id"]
    grid = json.loads(campaign["grid_json"])
    cells = (json.loads(campaign["template_json"]) if campaign.get("template_json")
             else template(validate_grid(grid)))
    return [{**t, "cell_id": template_cell_id(campaign_id, class_id, t), "campaign_id": campaign_id,
             "class_id": class_id, "seq": seq,
             # an interleaved cell measures one repetition, numbered by its round
             "repetitions": 1 if t.get("round") is not None else grid["repetitions"],
             "first_repetition": t.get("round") or 0,
             "replicas": grid["replicas"], "timeout_s": grid["timeout_s"],
             "group_id": group_id(campaign_id, class_id, t["model"], t["method"],
                                  t["workload_label"], t["batch_size"])}
            for seq, t in enumerate(cells)]


def choose(pending: list[dict[str, Any]], warm_key: str, busy_keys: set[str]) -> list[str]:
    """Order pending cells for one worker, best first.

    1. cells that reuse the worker's warm engine;
    2. then the engine with the most queued cells that no other worker holds warm or
       runs, so that each engine starts once across the fleet;
    3. then any engine (helping another worker finish its share; next_lease skips
       help that would not pay for its engine start, see worth_helping).
    Within an engine, grid order (oldest campaign first).
    """
    per_key = Counter(c["engine_key"] for c in pending)

    def rank(c: dict[str, Any]) -> tuple:
        key = c["engine_key"]
        return (key != warm_key, key in busy_keys, -per_key[key], key, c["created_at"], c["seq"])

    return [c["cell_id"] for c in sorted(pending, key=rank)]


def worth_helping(pending: int, cell_s: float | None, holders: int,
                  start_s: float | None) -> bool:
    """Whether starting another engine for a key that `holders` other workers already run
    finishes its cells sooner: their share of the queued work (pending x seconds per
    cell / holders) must outlast one engine start. Unknown timings count as worth it."""
    if holders == 0 or cell_s is None or start_s is None:
        return True
    return pending * cell_s / holders > start_s


def next_lease(store: Store, worker: dict[str, Any], warm_key: str,
               config: SchedulerConfig, active: ActivePlanner | None = None) -> Lease | None:
    """Lease the best cell for this worker, or None when it has nothing to do.

    Expired leases are returned to the queue by the caller (store.expire_leases) first.
    An active campaign offers only its current batch (``active``; without a planner its
    cells go in grid order like a full campaign's).
    """
    campaign_ids = bind_campaigns(store, worker)
    pending = store.pending_cells(worker["class_id"], campaign_ids, worker["worker_id"],
                                  worker["operator"])
    if active is not None and pending:
        pending = active.filter(pending, worker)
    if not pending:
        return None
    holders = store.engine_holders(worker["class_id"], worker["worker_id"],
                                   alive_since=time.time() - lost_after_s(config))
    key_of = {c["cell_id"]: c["engine_key"] for c in pending}
    queued = Counter(key_of.values())
    timings = None
    for cell_id in choose(pending, warm_key, set(holders)):
        key = key_of[cell_id]
        if key != warm_key and holders[key]:
            timings = timings or store.timings(worker["class_id"])
            if not worth_helping(queued[key], timings.cell_s(key), holders[key],
                                 timings.start_s):
                continue
        lease = store.lease_cell(cell_id, worker["worker_id"], config.lease_s)
        if lease is not None:
            return lease
    return None
