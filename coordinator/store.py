"""The farm's state in one SQLite file (WAL, synchronous=FULL): workers, campaigns, cells."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metainf.coordinator import replication
from metainf.grid import DEFAULT_TOLERANCE
from metainf.p import FINAL_STATUSES, METRIC_COLUMNS

SCHEMA = """
CREATE TABLE IF NOT EXISTS hardware_classes (
    class_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    profile_json TEXT NOT NULL,
    price_per_hour REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    class_id TEXT NOT NULL REFERENCES hardware_classes(class_id),
    profile_json TEXT NOT NULL,
    price_per_hour REAL NOT NULL DEFAULT 0,
    engine_version TEXT NOT NULL DEFAULT '',
    registered_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    warm_engine_key TEXT NOT NULL DEFAULT '',
    operator TEXT NOT NULL DEFAULT '',
    flags INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS peer_rtts (
    worker_id TEXT NOT NULL,
    peer_id TEXT NOT NULL,
    rtt_s REAL NOT NULL,
    measured_at REAL NOT NULL,
    PRIMARY KEY (worker_id, peer_id)
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    grid_json TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    template_json TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_classes (
    campaign_id TEXT NOT NULL REFERENCES campaigns(campaign_id),
    class_id TEXT NOT NULL REFERENCES hardware_classes(class_id),
    bound_at REAL NOT NULL,
    PRIMARY KEY (campaign_id, class_id)
);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(campaign_id),
    class_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    method_json TEXT NOT NULL,
    workload_label TEXT NOT NULL,
    workload_json TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    repetitions INTEGER NOT NULL,
    first_repetition INTEGER NOT NULL DEFAULT 0,
    replica INTEGER NOT NULL,
    replicas INTEGER NOT NULL DEFAULT 1,
    group_id TEXT NOT NULL DEFAULT '',
    engine_key TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    epoch INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_deadline REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    error TEXT NOT NULL DEFAULT '',
    avoid_worker TEXT
);
CREATE INDEX IF NOT EXISTS cells_by_class ON cells(class_id, status);
CREATE INDEX IF NOT EXISTS cells_by_campaign ON cells(campaign_id, status);
CREATE TABLE IF NOT EXISTS rejections (
    worker_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    campaign_id TEXT NOT NULL,
    cell_id TEXT NOT NULL REFERENCES cells(cell_id),
    repetition INTEGER NOT NULL,
    replica INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    runtime_s REAL, request_throughput REAL, throughput_tok_s REAL,
    ttft_p50_s REAL, ttft_p99_s REAL, itl_p50_s REAL, itl_p99_s REAL,
    peak_mem_gb REAL, energy_j REAL,
    engine TEXT NOT NULL DEFAULT '',
    engine_version TEXT NOT NULL DEFAULT '',
    weights TEXT NOT NULL DEFAULT '',
    engine_config_json TEXT NOT NULL DEFAULT '{}',
    engine_start_s REAL NOT NULL DEFAULT 0,
    stored_at REAL NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 1,
    UNIQUE (campaign_id, cell_id, repetition, replica)
);
CREATE INDEX IF NOT EXISTS results_by_cell ON results(cell_id);
CREATE TABLE IF NOT EXISTS block_timings (
    timing_id TEXT PRIMARY KEY,
    class_id TEXT NOT NULL REFERENCES hardware_classes(class_id),
    model TEXT NOT NULL,
    l_in INTEGER NOT NULL,
    repeats INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    worker_id TEXT,
    lease_deadline REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    tau_s REAL,
    tau_prefill_s REAL,
    device TEXT NOT NULL DEFAULT '',
    dtype TEXT NOT NULL DEFAULT '',
    torch_version TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    requested_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (class_id, model)
);
CREATE TABLE IF NOT EXISTS plans (
    plan_id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    model TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    result_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replica_groups (
    group_id TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(campaign_id),
    verdict TEXT NOT NULL,
    accepted_cell_id TEXT,
    detail TEXT NOT NULL,
    decided_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    cell_id TEXT PRIMARY KEY REFERENCES cells(cell_id),
    class_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    metric TEXT NOT NULL,
    predicted REAL NOT NULL,
    held_out_ape REAL,
    predicted_at REAL NOT NULL,
    measured REAL,
    ape REAL,
    observed_at REAL
);
CREATE INDEX IF NOT EXISTS predictions_by_class ON predictions(class_id, observed_at);
CREATE TABLE IF NOT EXISTS unsure_questions (
    question TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(campaign_id),
    class_id TEXT NOT NULL,
    asked_at REAL NOT NULL
);
"""

MIGRATIONS = (
    ("cells", "replicas", "INTEGER NOT NULL DEFAULT 1"),
    ("cells", "group_id", "TEXT NOT NULL DEFAULT ''"),
    ("results", "accepted", "INTEGER NOT NULL DEFAULT 1"),
    ("campaigns", "template_json", "TEXT NOT NULL DEFAULT ''"),
    ("workers", "rtt_s", "REAL"),
    ("cells", "first_repetition", "INTEGER NOT NULL DEFAULT 0"),
    ("workers", "echo_address", "TEXT NOT NULL DEFAULT ''"),
)
"""Columns added since the first schema: (table, column, declaration), added in place to
an older database on open, so that nothing stored is lost."""



class NotFound(LookupError):
    """An id the store does not know."""


class StaleLease(RuntimeError):
    """A report for a lease that has moved on (an older epoch: a zombie worker)."""


class NotHolder(PermissionError):
    """A report for a cell leased to another worker at this epoch, or never leased."""


@dataclass(frozen=True)
class Timings:
    """What a hardware class's done cells say about time: median engine start and median
    seconds per cell (excluding the engine start it paid), by engine key; None: unknown."""

    start_s: float | None
    per_key: dict[str, float]
    typical_cell_s: float | None

    def cell_s(self, engine_key: str) -> float | None:
        """Seconds per cell of an engine key; the class's typical cell before one is done."""
        return self.per_key.get(engine_key, self.typical_cell_s)


@dataclass(frozen=True)
class Lease:
    """A cell handed to a worker with its epoch and deadline."""

    cell: dict[str, Any]
    epoch: int
    deadline: float


def _held_cell(tx: sqlite3.Connection, cell_id: str, worker_id: str,
               epoch: int) -> dict[str, Any] | None:
    """The cell if this worker holds its lease at this epoch; None if this exact lease
    already has a final outcome (a repeated report). Raises NotFound, StaleLease, NotHolder."""
    row = tx.execute("SELECT * FROM cells WHERE cell_id=?", (cell_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown cell_id {cell_id!r}")
    cell = dict(row)
    if cell["status"] in FINAL_STATUSES and cell["worker_id"] == worker_id \
            and cell["epoch"] == epoch:
        return None
    if epoch < cell["epoch"]:
        raise StaleLease(f"cell {cell_id}: epoch {epoch} is stale, the cell was leased again "
                         f"(epoch {cell['epoch']}); this result is not stored")
    if cell["status"] != "leased" or cell["worker_id"] != worker_id or cell["epoch"] != epoch:
        raise NotHolder(f"cell {cell_id} is not leased to worker {worker_id} at epoch {epoch} "
                        f"(status {cell['status']}, epoch {cell['epoch']})")
    return cell


def _vote(tx: sqlite3.Connection, cell: dict[str, Any], now: float) -> None:
    """Once every copy of a replicated cell has finished, accept one into P, queue a
    tie-breaker copy, or declare the group disputed (replication.settle)."""
    gid = cell["group_id"]
    copies = [dict(r) for r in tx.execute(
        "SELECT * FROM cells WHERE group_id=? ORDER BY replica", (gid,))]
    if any(c["status"] not in FINAL_STATUSES for c in copies):
        return
    runtimes: dict[str, list[float]] = {}
    for r in tx.execute("SELECT r.cell_id, r.runtime_s FROM results r JOIN cells c "
                        "USING (cell_id) WHERE c.group_id=? AND r.status='done'", (gid,)):
        runtimes.setdefault(r["cell_id"], []).append(r["runtime_s"])
    grid = json.loads(tx.execute("SELECT grid_json FROM campaigns WHERE campaign_id=?",
                                 (cell["campaign_id"],)).fetchone()[0])
    verdict = replication.settle(
        [replication.Copy(c["replica"], c["status"], tuple(runtimes.get(c["cell_id"], ())))
         for c in copies], cell["replicas"],
        grid.get("replica_tolerance", DEFAULT_TOLERANCE))
    if verdict.state == "tiebreak":
        extra = dict(copies[-1])
        extra_replica = extra["replica"] + 1
        extra.update(cell_id=f"{gid}-r{extra_replica}", replica=extra_replica,
                     status="pending", epoch=0, worker_id=None, lease_deadline=None,
                     attempts=0, started_at=None, finished_at=None, error="",
                     avoid_worker=None)
        cols = ", ".join(extra)
        tx.execute(f"INSERT INTO cells({cols}) VALUES ({', '.join('?' * len(extra))})",
                   tuple(extra.values()))
        return
    accepted = next((c["cell_id"] for c in copies if c["replica"] == verdict.accepted_replica),
                    None)
    tx.execute("INSERT OR REPLACE INTO replica_groups(group_id, campaign_id, verdict, "
               "accepted_cell_id, detail, decided_at) VALUES (?,?,?,?,?,?)",
               (gid, cell["campaign_id"], verdict.state, accepted, verdict.detail, now))
    if accepted:
        tx.execute("UPDATE results SET accepted=1 WHERE cell_id=?", (accepted,))


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Store:
    """All reads and writes of the farm's SQLite database; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False,
                                     isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        # Every acknowledged write is on disk before the RPC answers.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        for table, column, declaration in MIGRATIONS:
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._conn.execute("CREATE INDEX IF NOT EXISTS cells_by_group ON cells(group_id)")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Run a read query and return plain dict rows."""
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    # -- workers and hardware -------------------------------------------------------

    def register_worker(self, name: str, class_id: str, label: str, profile: dict,
                        price_per_hour: float, engine_version: str, operator: str = "",
                        echo_address: str = "") -> str:
        """Store a new worker (and its hardware class if new); return the worker id."""
        worker_id = new_id("w")
        now = time.time()
        blob = json.dumps(profile, sort_keys=True)
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO hardware_classes(class_id, label, profile_json, price_per_hour) "
                "VALUES (?,?,?,?) ON CONFLICT(class_id) DO UPDATE SET price_per_hour = "
                "CASE WHEN excluded.price_per_hour > 0 THEN excluded.price_per_hour "
                "ELSE hardware_classes.price_per_hour END",
                (class_id, label, blob, price_per_hour))
            tx.execute(
                "INSERT INTO workers(worker_id, name, class_id, profile_json, price_per_hour, "
                "engine_version, registered_at, last_heartbeat, operator, echo_address) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (worker_id, name, class_id, blob, price_per_hour, engine_version, now, now,
                 operator, echo_address))
        return worker_id

    def worker(self, worker_id: str) -> dict[str, Any]:
        """One worker joined with its hardware class label; NotFound if unknown."""
        rows = self.query(
            "SELECT w.*, h.label AS hardware_label FROM workers w "
            "JOIN hardware_classes h USING (class_id) WHERE worker_id = ?", (worker_id,))
        if not rows:
            raise NotFound(f"unknown worker_id {worker_id!r}: register first")
        return rows[0]

    def workers(self) -> list[dict[str, Any]]:
        """Every worker with its hardware label and the cell it holds, if any."""
        return self.query(
            "SELECT w.*, h.label AS hardware_label, "
            "(SELECT c.cell_id FROM cells c WHERE c.worker_id = w.worker_id "
            " AND c.status = 'leased' LIMIT 1) AS current_cell "
            "FROM workers w JOIN hardware_classes h USING (class_id) ORDER BY registered_at")

    def store_peer_rtts(self, worker_id: str, rtts: dict[str, float]) -> None:
        """Record a worker's measured RTTs to peers (seconds, by peer worker id)."""
        now = time.time()
        with self.transaction() as tx:
            tx.executemany(
                "INSERT INTO peer_rtts(worker_id, peer_id, rtt_s, measured_at) VALUES (?,?,?,?) "
                "ON CONFLICT(worker_id, peer_id) DO UPDATE SET rtt_s=excluded.rtt_s, "
                "measured_at=excluded.measured_at",
                [(worker_id, peer, rtt, now) for peer, rtt in rtts.items()])

    def peer_rtts(self) -> dict[tuple[str, str], float]:
        """Every measured worker-to-worker RTT: (worker id, peer id) -> seconds."""
        return {(r["worker_id"], r["peer_id"]): r["rtt_s"]
                for r in self.query("SELECT worker_id, peer_id, rtt_s FROM peer_rtts")}

    def peers_to_measure(self, worker_id: str, alive_since: float, max_age_s: float,
                         limit: int) -> list[dict[str, Any]]:
        """Alive peers with an echo service whose RTT from this worker is unknown or older
        than `max_age_s`, least recently measured first, at most `limit`."""
        return self.query(
            "SELECT w.worker_id, w.echo_address FROM workers w LEFT JOIN peer_rtts r "
            "ON r.worker_id = ? AND r.peer_id = w.worker_id "
            "WHERE w.worker_id != ? AND w.echo_address != '' AND w.last_heartbeat >= ? "
            "AND (r.measured_at IS NULL OR r.measured_at < ?) "
            "ORDER BY COALESCE(r.measured_at, 0), w.registered_at LIMIT ?",
            (worker_id, worker_id, alive_since, time.time() - max_age_s, limit))

    def hardware_classes(self) -> list[dict[str, Any]]:
        """Every hardware class seen by the farm."""
        return self.query("SELECT * FROM hardware_classes ORDER BY label")

    def touch_worker(self, worker_id: str, warm_engine_key: str | None = None) -> None:
        """Record a sign of life (and the worker's warm engine, when given)."""
        with self.transaction() as tx:
            if warm_engine_key is None:
                cur = tx.execute("UPDATE workers SET last_heartbeat=? WHERE worker_id=?",
                                 (time.time(), worker_id))
            else:
                cur = tx.execute(
                    "UPDATE workers SET last_heartbeat=?, warm_engine_key=? WHERE worker_id=?",
                    (time.time(), warm_engine_key, worker_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown worker_id {worker_id!r}: register first")

    # -- campaigns ------------------------------------------------------------------

    def add_campaign(self, name: str, grid: dict, meta: dict,
                     template: list[dict[str, Any]]) -> str:
        """Store a validated grid, its metadata and its expanded cell template as a new
        campaign; return its id."""
        campaign_id = new_id("c")
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO campaigns(campaign_id, name, grid_json, meta_json, created_at, "
                "template_json) VALUES (?,?,?,?,?,?)",
                (campaign_id, name, json.dumps(grid), json.dumps(meta), time.time(),
                 json.dumps(template)))
        return campaign_id

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        """One campaign row; NotFound if unknown."""
        rows = self.query("SELECT * FROM campaigns WHERE campaign_id = ?", (campaign_id,))
        if not rows:
            raise NotFound(f"unknown campaign_id {campaign_id!r}")
        return rows[0]

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign, oldest first."""
        return self.query("SELECT * FROM campaigns ORDER BY created_at")

    def bound_classes(self, campaign_id: str) -> list[str]:
        """Hardware classes whose cells exist for this campaign."""
        rows = self.query("SELECT class_id FROM campaign_classes WHERE campaign_id=? "
                          "ORDER BY bound_at", (campaign_id,))
        return [r["class_id"] for r in rows]

    def bind_class(self, campaign_id: str, class_id: str, cells: list[dict[str, Any]]) -> bool:
        """Create a campaign's cells for one hardware class, once; False if already bound."""
        now = time.time()
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT OR IGNORE INTO campaign_classes(campaign_id, class_id, bound_at) "
                "VALUES (?,?,?)", (campaign_id, class_id, now))
            if cur.rowcount == 0:
                return False
            tx.executemany(
                "INSERT INTO cells(cell_id, campaign_id, class_id, seq, model, method, "
                "method_json, workload_label, workload_json, batch_size, repetitions, "
                "first_repetition, replica, replicas, group_id, engine_key, timeout_s) VALUES "
                "(:cell_id, :campaign_id, :class_id, :seq, :model, :method, :method_json, "
                ":workload_label, :workload_json, :batch_size, :repetitions, :first_repetition, "
                ":replica, :replicas, :group_id, :engine_key, :timeout_s)", cells)
        return True

    def cell_counts(self, campaign_id: str) -> dict[str, int]:
        """Cells of a campaign by status."""
        rows = self.query("SELECT status, COUNT(*) AS n FROM cells WHERE campaign_id=? "
                          "GROUP BY status", (campaign_id,))
        return {r["status"]: r["n"] for r in rows}

    def skip_pending(self, campaign_id: str, reason: str) -> int:
        """Mark a campaign's pending cells skipped (final, no result) with the reason; count
        them (an active campaign that stopped early)."""
        with self.transaction() as tx:
            cur = tx.execute(
                "UPDATE cells SET status='skipped', error=?, finished_at=? "
                "WHERE campaign_id=? AND status='pending'", (reason, time.time(), campaign_id))
            return cur.rowcount

    # -- leases ---------------------------------------------------------------------

    def expire_leases(self, now: float) -> int:
        """Return cells whose lease deadline passed to the queue; count them."""
        with self.transaction() as tx:
            cur = tx.execute(
                "UPDATE cells SET status='pending', worker_id=NULL, lease_deadline=NULL "
                "WHERE status='leased' AND lease_deadline < ?", (now,))
            return cur.rowcount

    def refresh_leases(self, lease_s: float) -> int:
        """Give every lease found in flight a fresh deadline (after a coordinator restart)."""
        with self.transaction() as tx:
            cur = tx.execute("UPDATE cells SET lease_deadline=? WHERE status='leased'",
                             (time.time() + lease_s,))
            return cur.rowcount

    def pending_cells(self, class_id: str, campaign_ids: list[str], worker_id: str = "",
                      operator: str = "") -> list[dict[str, Any]]:
        """Queued cells of one hardware class in the given campaigns that this worker may take.

        A copy of a replicated cell is never offered to a worker whose operator (or, for
        workers without an operator, the worker itself) runs or ran another copy.
        """
        if not campaign_ids:
            return []
        marks = ",".join("?" * len(campaign_ids))
        return self.query(
            f"SELECT c.cell_id, c.campaign_id, c.engine_key, c.seq, k.created_at FROM cells c "
            f"JOIN campaigns k USING (campaign_id) WHERE c.class_id=? AND c.status='pending' "
            f"AND c.campaign_id IN ({marks}) AND (c.avoid_worker IS NULL OR c.avoid_worker != ?) "
            f"AND (c.replicas = 1 OR NOT EXISTS (SELECT 1 FROM cells s JOIN workers sw "
            f"ON sw.worker_id = s.worker_id WHERE s.group_id = c.group_id "
            f"AND s.cell_id != c.cell_id AND s.status != 'pending' "
            f"AND (sw.worker_id = ? OR (sw.operator != '' AND sw.operator = ?)))) "
            f"ORDER BY k.created_at, c.seq",
            (class_id, *campaign_ids, worker_id, worker_id, operator))

    def engine_holders(self, class_id: str, exclude_worker: str,
                       alive_since: float = 0.0) -> Counter[str]:
        """How many other workers of a class (heard from since `alive_since`) hold each
        engine key warm or are running a cell of it now."""
        rows = self.query(
            "SELECT worker_id, warm_engine_key AS k FROM workers WHERE class_id=? "
            "AND worker_id != ? AND last_heartbeat >= ? "
            "UNION SELECT worker_id, engine_key AS k FROM cells WHERE class_id=? "
            "AND status='leased' AND worker_id != ?",
            (class_id, exclude_worker, alive_since, class_id, exclude_worker))
        return Counter(r["k"] for r in rows if r["k"])

    def timings(self, class_id: str) -> Timings:
        """Engine start and per-cell seconds observed on the done cells of a class."""
        rows = self.query(
            "SELECT c.engine_key, c.finished_at - c.started_at AS wall, "
            "MAX(r.engine_start_s) AS start FROM cells c JOIN results r USING (cell_id) "
            "WHERE c.class_id=? AND c.status='done' GROUP BY c.cell_id", (class_id,))
        starts = [r["start"] for r in rows if r["start"]]
        by_key: dict[str, list[float]] = {}
        for r in rows:
            by_key.setdefault(r["engine_key"], []).append(max(0.0, r["wall"] - (r["start"] or 0)))
        every = [s for v in by_key.values() for s in v]
        return Timings(start_s=float(np.median(starts)) if starts else None,
                       per_key={k: float(np.median(v)) for k, v in by_key.items()},
                       typical_cell_s=float(np.median(every)) if every else None)

    def lease_cell(self, cell_id: str, worker_id: str, lease_s: float) -> Lease | None:
        """Lease a pending cell to a worker with a new epoch; None if someone was faster."""
        now = time.time()
        with self.transaction() as tx:
            cur = tx.execute(
                "UPDATE cells SET status='leased', epoch=epoch+1, worker_id=?, lease_deadline=?, "
                "started_at=? WHERE cell_id=? AND status='pending'",
                (worker_id, now + lease_s, now, cell_id))
            if cur.rowcount == 0:
                return None
            row = dict(tx.execute("SELECT * FROM cells WHERE cell_id=?", (cell_id,)).fetchone())
        return Lease(cell=row, epoch=row["epoch"], deadline=row["lease_deadline"])

    def heartbeat(self, worker_id: str, cell_id: str, epoch: int,
                  lease_s: float, rtt_s: float = 0.0) -> dict[str, Any] | None:
        """Record a worker's sign of life (and its RTT to the coordinator when > 0) and, when
        it runs a cell, push that lease's deadline out, in one transaction; return the cell
        if the worker still holds it."""
        now = time.time()
        with self.transaction() as tx:
            tx.execute("UPDATE workers SET last_heartbeat=?, rtt_s=CASE WHEN ? > 0 THEN ? "
                       "ELSE rtt_s END WHERE worker_id=?", (now, rtt_s, rtt_s, worker_id))
            if not cell_id:
                return None
            cur = tx.execute(
                "UPDATE cells SET lease_deadline=? WHERE cell_id=? AND worker_id=? AND epoch=? "
                "AND status='leased'", (now + lease_s, cell_id, worker_id, epoch))
            if cur.rowcount != 1:
                return None
            return dict(tx.execute("SELECT * FROM cells WHERE cell_id=?", (cell_id,)).fetchone())

    def cell(self, cell_id: str) -> dict[str, Any]:
        """One cell row; NotFound if unknown."""
        rows = self.query("SELECT * FROM cells WHERE cell_id=?", (cell_id,))
        if not rows:
            raise NotFound(f"unknown cell_id {cell_id!r}")
        return rows[0]

    # -- placement plans --------------------------------------------------------------

    BLOCK_TIMING_ATTEMPTS = 2
    """Leases of a block timing before it is left failed (a worker that vanished twice)."""

    def request_block_timing(self, class_id: str, model: str, l_in: int = 128,
                             repeats: int = 10) -> bool:
        """Queue a block timing of `model` for a hardware class, unless it has one already
        (pending, running, done or failed); True when queued."""
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT OR IGNORE INTO block_timings(timing_id, class_id, model, l_in, repeats, "
                "requested_at) VALUES (?,?,?,?,?,?)",
                (new_id("t"), class_id, model, l_in, repeats, time.time()))
            return cur.rowcount == 1

    def lease_block_timing(self, worker_id: str, class_id: str, lease_s: float
                           ) -> dict[str, Any] | None:
        """Lease the class's oldest pending block timing (or one whose lease expired) to the
        worker; None when there is none."""
        now = time.time()
        with self.transaction() as tx:
            tx.execute("UPDATE block_timings SET status='failed', error='lease expired after "
                       "every attempt' WHERE status='leased' AND lease_deadline < ? AND "
                       "attempts >= ?", (now, self.BLOCK_TIMING_ATTEMPTS))
            row = tx.execute(
                "SELECT timing_id FROM block_timings WHERE class_id=? AND (status='pending' OR "
                "(status='leased' AND lease_deadline < ?)) ORDER BY requested_at LIMIT 1",
                (class_id, now)).fetchone()
            if row is None:
                return None
            tx.execute("UPDATE block_timings SET status='leased', worker_id=?, lease_deadline=?, "
                       "attempts=attempts+1 WHERE timing_id=?",
                       (worker_id, now + lease_s, row["timing_id"]))
            return dict(tx.execute("SELECT * FROM block_timings WHERE timing_id=?",
                                   (row["timing_id"],)).fetchone())

    def record_block_timing(self, timing_id: str, worker_id: str, status: str,
                            timing: dict[str, Any]) -> bool:
        """Store a leased block timing's outcome; False for a repeated report of it.

        NotFound for an unknown timing, NotHolder when it is leased to another worker.
        """
        with self.transaction() as tx:
            row = tx.execute("SELECT * FROM block_timings WHERE timing_id=?",
                             (timing_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown timing_id {timing_id!r}")
            if row["worker_id"] != worker_id:
                raise NotHolder(f"block timing {timing_id} is not leased to worker {worker_id}")
            if row["status"] in ("done", "failed"):
                return False
            tx.execute(
                "UPDATE block_timings SET status=?, tau_s=?, tau_prefill_s=?, device=?, dtype=?, "
                "torch_version=?, error=?, finished_at=? WHERE timing_id=?",
                (status, timing.get("tau_s"), timing.get("tau_prefill_s"),
                 timing.get("device", ""), timing.get("dtype", ""),
                 timing.get("torch_version", ""), timing.get("error", ""), time.time(),
                 timing_id))
            return True

    def block_timing(self, class_id: str, model: str) -> dict[str, Any] | None:
        """The hardware class's done block timing of `model`, or None."""
        rows = self.query("SELECT * FROM block_timings WHERE class_id=? AND model=? AND "
                          "status='done'", (class_id, model))
        return rows[0] if rows else None

    PLANS_KEPT = 50
    """Plans kept for the dashboard; older ones are dropped when a new one is saved."""

    def save_plan(self, result: dict[str, Any]) -> int:
        """Store a plan made by Place (its JSON result); keep the newest PLANS_KEPT."""
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO plans(created_at, model, algorithm, result_json) VALUES (?,?,?,?)",
                (result.get("created_at", time.time()), result["model"],
                 result["plan"]["algorithm"], json.dumps(result)))
            tx.execute("DELETE FROM plans WHERE plan_id <= ?", (cur.lastrowid - self.PLANS_KEPT,))
            return int(cur.lastrowid)

    def latest_plan(self) -> dict[str, Any] | None:
        """The newest plan Place made (its JSON result), or None."""
        rows = self.query("SELECT result_json FROM plans ORDER BY plan_id DESC LIMIT 1")
        return json.loads(rows[0]["result_json"]) if rows else None

    # -- results --------------------------------------------------------------------

    def record_outcome(self, cell_id: str, worker_id: str, epoch: int, status: str, error: str,
                       runs: list[dict[str, Any]], engine: dict[str, Any],
                       max_attempts: int) -> int:
        """Store a leased cell's outcome atomically; return rows stored.

        Done cells store one row per repetition. Engine failures go back to the queue
        until `max_attempts` is reached and are then stored as final rows with their
        status and error. A repeated report of a stored outcome stores nothing.
        Raises StaleLease when the worker does not hold the cell at that epoch.
        """
        now = time.time()
        with self.transaction() as tx:
            cell = _held_cell(tx, cell_id, worker_id, epoch)
            if cell is None:
                return 0  # the same report again: already stored
            attempts = cell["attempts"] + (status in ("failed", "oom"))
            if status in ("failed", "oom") and attempts < max_attempts:
                tx.execute(
                    "UPDATE cells SET status='pending', worker_id=NULL, lease_deadline=NULL, "
                    "attempts=?, error=? WHERE cell_id=?", (attempts, error, cell_id))
                return 0
            if status != "done":
                by_rep = {r["repetition"]: r for r in runs}
                runs = [by_rep.get(i, {"repetition": i, "status": status, "error": error})
                        for i in range(cell["repetitions"])]
            stored = 0
            for run in runs:
                cur = tx.execute(
                    "INSERT OR IGNORE INTO results(campaign_id, cell_id, repetition, replica, "
                    "worker_id, epoch, status, error, runtime_s, request_throughput, "
                    "throughput_tok_s, ttft_p50_s, ttft_p99_s, itl_p50_s, itl_p99_s, "
                    "peak_mem_gb, energy_j, engine, engine_version, weights, "
                    "engine_config_json, engine_start_s, stored_at, accepted) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (cell["campaign_id"], cell_id,
                     run["repetition"] + cell["first_repetition"], cell["replica"],
                     worker_id, epoch, run.get("status", status),
                     run.get("error", "") or (error if run.get("status") != "done" else ""),
                     *(run.get(c) for c in METRIC_COLUMNS),
                     engine.get("engine", ""), engine.get("engine_version", ""),
                     engine.get("weights", ""), engine.get("engine_config_json", "{}"),
                     engine.get("engine_start_s", 0.0), now, int(cell["replicas"] == 1)))
                stored += cur.rowcount
            tx.execute(
                "UPDATE cells SET status=?, attempts=?, error=?, finished_at=?, "
                "lease_deadline=NULL WHERE cell_id=?", (status, attempts, error, now, cell_id))
            if cell["replicas"] > 1:
                _vote(tx, cell, now)
        return stored

    def reject_result(self, cell_id: str, worker_id: str, epoch: int, reason: str,
                      quarantine_after: int) -> bool:
        """Refuse a leased cell's implausible result: queue the cell for another worker,
        count a flag against this one; return True when the worker is now quarantined."""
        with self.transaction() as tx:
            if _held_cell(tx, cell_id, worker_id, epoch) is None:
                return False
            tx.execute("INSERT INTO rejections(worker_id, cell_id, epoch, reason, at) "
                       "VALUES (?,?,?,?,?)", (worker_id, cell_id, epoch, reason, time.time()))
            tx.execute("UPDATE cells SET status='pending', worker_id=NULL, lease_deadline=NULL, "
                       "avoid_worker=?, error=? WHERE cell_id=?",
                       (worker_id, f"flagged: {reason}", cell_id))
            tx.execute("UPDATE workers SET flags=flags+1, quarantined = (flags+1 >= ?) "
                       "WHERE worker_id=?", (quarantine_after, worker_id))
            row = tx.execute("SELECT quarantined FROM workers WHERE worker_id=?",
                             (worker_id,)).fetchone()
        return bool(row[0])

    def peer_medians(self, cell: dict[str, Any]) -> list[float]:
        """Median runtime of each other done cell of the same class, model, method,
        workload and batch size."""
        rows = self.query(
            "SELECT r.cell_id, r.runtime_s FROM results r JOIN cells c USING (cell_id) "
            "WHERE c.class_id=? AND c.model=? AND c.method=? AND c.workload_label=? "
            "AND c.batch_size=? AND c.cell_id != ? AND r.status='done'",
            (cell["class_id"], cell["model"], cell["method"], cell["workload_label"],
             cell["batch_size"], cell["cell_id"]))
        by_cell: dict[str, list[float]] = {}
        for r in rows:
            by_cell.setdefault(r["cell_id"], []).append(r["runtime_s"])
        return [float(np.median(v)) for v in by_cell.values()]

    def results(self, campaign_id: str, all_replicas: bool = False) -> list[dict[str, Any]]:
        """The result rows of a campaign in P (every copy's rows with `all_replicas`),
        joined with their cells."""
        return self.query(
            "SELECT r.*, c.model, c.method, c.method_json, c.workload_label, c.workload_json, "
            "c.batch_size, h.label AS hardware, w.name AS worker_name FROM results r "
            "JOIN cells c USING (cell_id) JOIN hardware_classes h ON h.class_id = c.class_id "
            "LEFT JOIN workers w ON w.worker_id = r.worker_id "
            "WHERE r.campaign_id=? AND (r.accepted = 1 OR ?) "
            "ORDER BY c.seq, c.class_id, r.repetition", (campaign_id, int(all_replicas)))

    def replica_groups(self, campaign_id: str) -> dict[str, int]:
        """Groups of copies of a replicated campaign by verdict (empty without replicas)."""
        groups = self.query(
            "SELECT c.group_id, g.verdict FROM cells c LEFT JOIN replica_groups g "
            "USING (group_id) WHERE c.campaign_id=? AND c.replicas > 1 GROUP BY c.group_id",
            (campaign_id,))
        return dict(Counter(g["verdict"] or "waiting" for g in groups))

    def cell_durations(self, campaign_id: str) -> list[float]:
        """Wall seconds of each finished cell of a campaign (lease to report)."""
        rows = self.query("SELECT finished_at - started_at AS d FROM cells WHERE campaign_id=? "
                          "AND finished_at IS NOT NULL", (campaign_id,))
        return [r["d"] for r in rows if r["d"] is not None]

    # -- drift: predictions of cells before they ran, and their errors --------------

    def record_prediction(self, cell_id: str, class_id: str, model_version: str, metric: str,
                          predicted: float, held_out_ape: float | None) -> bool:
        """Keep what the serving model predicted for a cell before it ran (the first
        prediction only: a cell leased again keeps it); True when stored."""
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT OR IGNORE INTO predictions(cell_id, class_id, model_version, metric, "
                "predicted, held_out_ape, predicted_at) VALUES (?,?,?,?,?,?,?)",
                (cell_id, class_id, model_version, metric, predicted, held_out_ape,
                 time.time()))
            return cur.rowcount == 1

    def observe_prediction(self, cell_id: str) -> float | None:
        """Compare a cell's accepted done result (median of its repetitions, in the
        prediction's metric) with its prediction, once; the absolute percentage error, or
        None when there is no prediction, it was compared already, or nothing is accepted."""
        with self.transaction() as tx:
            row = tx.execute("SELECT metric, predicted FROM predictions WHERE cell_id=? AND "
                             "observed_at IS NULL", (cell_id,)).fetchone()
            if row is None or row["metric"] not in METRIC_COLUMNS:
                return None
            values = [r[0] for r in tx.execute(
                f"SELECT {row['metric']} FROM results WHERE cell_id=? AND status='done' "
                f"AND accepted=1", (cell_id,)) if r[0] is not None and r[0] > 0]
            if not values:
                return None
            measured = float(np.median(values))
            ape = abs(measured - row["predicted"]) / measured
            tx.execute("UPDATE predictions SET measured=?, ape=?, observed_at=? WHERE cell_id=?",
                       (measured, ape, time.time(), cell_id))
            return ape

    # -- unsure -> measure: campaigns queued by a Select ---------------------------

    def question_campaign(self, question: str) -> str | None:
        """The campaign queued to measure a Select question (its key), or None."""
        rows = self.query("SELECT campaign_id FROM unsure_questions WHERE question=?",
                          (question,))
        return rows[0]["campaign_id"] if rows else None

    def add_question(self, question: str, campaign_id: str, class_id: str) -> None:
        """Remember (or replace) the campaign that measures a Select question."""
        with self.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO unsure_questions(question, campaign_id, class_id, "
                       "asked_at) VALUES (?,?,?,?)", (question, campaign_id, class_id,
                                                      time.time()))

    def drift_window(self, class_id: str, size: int) -> list[dict[str, Any]]:
        """The newest `size` compared predictions of a hardware class, newest first."""
        return self.query(
            "SELECT cell_id, model_version, predicted, measured, ape, held_out_ape FROM "
            "predictions WHERE class_id=? AND observed_at IS NOT NULL ORDER BY observed_at "
            "DESC LIMIT ?", (class_id, size))
