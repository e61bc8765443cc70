"""Store and scheduler: late binding, warm-engine locality, epochs, retries, idempotency."""

from __future__ import annotations

import json

import pytest

from metainf.coordinator import campaigns
from metainf.coordinator.scheduler import (
    SchedulerConfig,
    campaign_done,
    choose,
    next_lease,
    worth_helping,
)
from metainf.coordinator.store import StaleLease, Store

CPU = {"kind": "cpu", "accelerator": "", "accelerator_count": 0, "accelerator_memory_gb": 0,
       "compute_capability": "", "driver_version": "", "power_limit_w": 0,
       "cpu_model": "Test CPU", "cpu_cores": 1, "ram_gb": 8, "isa_flags": ["avx2"]}
GRID = {
    "name": "t", "models": ["llama-tiny"], "methods": ["none", "cb", "pc", "cb+pc"],
    "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4, "batch_size": [2, 4],
                   "max_output_tokens": 2}],
    "repetitions": 2,
}
CONFIG = SchedulerConfig(lease_s=30, max_attempts=2)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "farm.db")
    yield s
    s.close()


def add_worker(store, name="w", class_id="hw1"):
    wid = store.register_worker(name, class_id, f"label-{class_id}", CPU, 0.1, "test")
    return store.worker(wid)


def done_runs(n):
    return [{"repetition": i, "status": "done", "runtime_s": 1.0 + i} for i in range(n)]


def test_campaign_waits_for_hardware_then_binds_late(store):
    cid, n = campaigns.create(store, GRID)
    assert n == 8
    assert store.cell_counts(cid) == {}
    w = add_worker(store)
    lease = next_lease(store, w, "", CONFIG)
    assert lease is not None and lease.epoch == 1
    assert sum(store.cell_counts(cid).values()) == 8
    w2 = add_worker(store, "w2", "hw2")
    next_lease(store, w2, "", CONFIG)
    assert sum(store.cell_counts(cid).values()) == 16  # a second class gets the whole grid


def test_binding_a_class_reads_the_template_stored_at_submit(store, monkeypatch):
    import metainf.coordinator.scheduler as scheduler

    cid, n = campaigns.create(store, GRID)
    assert len(json.loads(store.campaign(cid)["template_json"])) == n

    def no_second_validation(grid):
        raise AssertionError("the grid was validated again at binding")

    monkeypatch.setattr(scheduler, "validate_grid", no_second_validation)
    next_lease(store, add_worker(store), "", CONFIG)
    cells = store.query("SELECT * FROM cells WHERE campaign_id=? ORDER BY seq", (cid,))
    assert [(c["method"], c["batch_size"]) for c in cells] == [
        (m, b) for m in GRID["methods"] for b in (2, 4)]
    assert {c["repetitions"] for c in cells} == {2}


def test_warm_engine_is_preferred(store):
    campaigns.create(store, GRID)
    w = add_worker(store)
    first = next_lease(store, w, "", CONFIG)
    second = next_lease(store, w, first.cell["engine_key"], CONFIG)
    assert second.cell["engine_key"] == first.cell["engine_key"]


def test_choose_orders_by_locality():
    pending = [
        {"cell_id": "a", "engine_key": "k1", "created_at": 0, "seq": 0},
        {"cell_id": "b", "engine_key": "k2", "created_at": 0, "seq": 1},
        {"cell_id": "c", "engine_key": "k2", "created_at": 0, "seq": 2},
        {"cell_id": "d", "engine_key": "k3", "created_at": 0, "seq": 3},
    ]
    assert choose(pending, "k3", set())[0] == "d"            # warm engine first
    assert choose(pending, "", set())[0] == "b"               # the biggest engine group
    assert choose(pending, "", {"k2"})[0] == "a"              # not someone else's engine


def test_two_workers_of_a_class_split_cells_without_overlap(store):
    cid, _ = campaigns.create(store, GRID)
    w1, w2 = add_worker(store, "a"), add_worker(store, "b")
    seen = []
    for _ in range(4):
        for w in (w1, w2):
            lease = next_lease(store, w, "", CONFIG)
            seen.append(lease.cell["cell_id"])
            store.record_outcome(lease.cell["cell_id"], w["worker_id"], lease.epoch, "done", "",
                                 done_runs(2), {"engine": "vllm"}, CONFIG.max_attempts)
    assert len(set(seen)) == 8
    assert campaign_done(store, cid)
    assert len(store.results(cid)) == 16


def test_stale_epoch_is_fenced_and_reports_are_idempotent(store):
    campaigns.create(store, GRID)
    w1, w2 = add_worker(store, "a"), add_worker(store, "b")
    lease = next_lease(store, w1, "", CONFIG)
    cell_id = lease.cell["cell_id"]
    store.expire_leases(now=lease.deadline + 1)  # w1 vanished
    again = store.lease_cell(cell_id, w2["worker_id"], 30)
    assert again.epoch == lease.epoch + 1
    with pytest.raises(StaleLease):
        store.record_outcome(cell_id, w1["worker_id"], lease.epoch, "done", "", done_runs(2),
                             {}, 2)
    assert store.record_outcome(cell_id, w2["worker_id"], again.epoch, "done", "",
                                done_runs(2), {}, 2) == 2
    assert store.record_outcome(cell_id, w2["worker_id"], again.epoch, "done", "",
                                done_runs(2), {}, 2) == 0
    assert len(store.query("SELECT * FROM results WHERE cell_id=?", (cell_id,))) == 2


def test_engine_failures_retry_then_become_final_rows(store):
    cid, _ = campaigns.create(store, GRID)
    w = add_worker(store)
    lease = next_lease(store, w, "", CONFIG)
    cell_id = lease.cell["cell_id"]
    store.record_outcome(cell_id, w["worker_id"], lease.epoch, "oom", "killed", [], {}, 2)
    assert store.cell(cell_id)["status"] == "pending"
    lease2 = store.lease_cell(cell_id, w["worker_id"], 30)
    store.record_outcome(cell_id, w["worker_id"], lease2.epoch, "oom", "killed", [], {}, 2)
    cell = store.cell(cell_id)
    assert cell["status"] == "oom" and cell["attempts"] == 2
    rows = store.query("SELECT status, error FROM results WHERE cell_id=?", (cell_id,))
    assert [r["status"] for r in rows] == ["oom", "oom"]
    assert rows[0]["error"] == "killed"


def test_state_survives_reopening(tmp_path):
    s = Store(tmp_path / "f.db")
    cid, _ = campaigns.create(s, GRID)
    w = add_worker(s)
    lease = next_lease(s, w, "", CONFIG)
    s.record_outcome(lease.cell["cell_id"], w["worker_id"], lease.epoch, "done", "",
                     done_runs(2), {}, 2)
    s.close()
    s2 = Store(tmp_path / "f.db")
    assert len(s2.results(cid)) == 2
    assert s2.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    s2.close()


def test_help_must_outlast_an_engine_start():
    assert worth_helping(pending=10, cell_s=5.0, holders=1, start_s=20.0)   # 50 s > 20 s
    assert not worth_helping(pending=3, cell_s=5.0, holders=1, start_s=20.0)  # 15 s < 20 s
    assert not worth_helping(pending=6, cell_s=5.0, holders=2, start_s=20.0)  # 15 s each
    assert worth_helping(pending=1, cell_s=None, holders=1, start_s=20.0)   # unknown: help
    assert worth_helping(pending=1, cell_s=1.0, holders=0, start_s=20.0)    # nobody runs it


def _finish(store, worker, lease, wall_s, start_s):
    store.record_outcome(lease.cell["cell_id"], worker["worker_id"], lease.epoch, "done", "",
                         done_runs(2), {"engine_start_s": start_s}, 2)
    store.query("UPDATE cells SET started_at = finished_at - ? WHERE cell_id = ?",
                (wall_s, lease.cell["cell_id"]))


def test_an_idle_worker_does_not_start_an_engine_for_a_short_tail(store):
    one_engine = {**GRID, "methods": ["none", "cb"]}  # none and cb share an engine
    campaigns.create(store, one_engine)
    w1, w2 = add_worker(store, "a"), add_worker(store, "b")
    first = next_lease(store, w1, "", CONFIG)
    key = first.cell["engine_key"]
    _finish(store, w1, first, wall_s=22.0, start_s=20.0)   # 2 s per cell after a 20 s start
    store.touch_worker(w1["worker_id"], key)
    second = next_lease(store, w1, key, CONFIG)
    # 2 cells left x 2 s is far less than a 20 s engine start: w2 waits instead.
    assert next_lease(store, w2, "", CONFIG) is None
    _finish(store, w1, second, wall_s=2.0, start_s=0.0)
    # Once its holder is lost, the cells are anyone's.
    store.query("UPDATE workers SET last_heartbeat = 0 WHERE worker_id = ?", (w1["worker_id"],))
    assert next_lease(store, w2, "", CONFIG) is not None


def test_an_idle_worker_helps_with_a_long_queue(store):
    many = {**GRID, "methods": ["none", "cb"], "repetitions": 2,
            "workloads": [{**GRID["workloads"][0], "batch_size": [1, 2, 3, 4, 5, 6, 7, 8]}]}
    campaigns.create(store, many)
    w1, w2 = add_worker(store, "a"), add_worker(store, "b")
    first = next_lease(store, w1, "", CONFIG)
    _finish(store, w1, first, wall_s=25.0, start_s=20.0)   # 5 s per cell
    store.touch_worker(w1["worker_id"], first.cell["engine_key"])
    next_lease(store, w1, first.cell["engine_key"], CONFIG)
    # 14 cells x 5 s queued behind w1: a 20 s start pays off.
    helped = next_lease(store, w2, "", CONFIG)
    assert helped is not None and helped.cell["engine_key"] == first.cell["engine_key"]


def test_a_key_with_no_done_cell_is_timed_like_the_class(store):
    two_engines = {**GRID, "methods": ["none", "pc"]}   # 2 cells per engine
    campaigns.create(store, two_engines)
    w1, w2 = add_worker(store, "a"), add_worker(store, "b")
    mine = next_lease(store, w2, "", CONFIG)
    _finish(store, w2, mine, wall_s=21.0, start_s=20.0)   # cells take 1 s on this class
    store.touch_worker(w2["worker_id"], mine.cell["engine_key"])
    theirs = next_lease(store, w1, "", CONFIG)            # w1 starts the other engine
    assert theirs.cell["engine_key"] != mine.cell["engine_key"]
    assert store.timings("hw1").cell_s(theirs.cell["engine_key"]) == pytest.approx(1.0)
    mine2 = next_lease(store, w2, mine.cell["engine_key"], CONFIG)
    _finish(store, w2, mine2, wall_s=1.0, start_s=0.0)
    # One queued cell of w1's engine, about 1 s, is not worth a 20 s start on w2.
    assert next_lease(store, w2, mine.cell["engine_key"], CONFIG) is None


def test_interleaved_repetitions_run_as_rounds_within_a_warm_engine(store):
    """interleave: true makes one cell per repetition; a warm engine runs round 0 of all its
    cells before round 1 of any, and P numbers each row by its round."""
    cid, n = campaigns.create(store, {**GRID, "interleave": True})
    assert n == 16  # 8 cells x 2 rounds
    w = add_worker(store)
    warm, order = "", []
    while (lease := next_lease(store, w, warm, CONFIG)) is not None:
        cell = lease.cell
        assert cell["repetitions"] == 1
        order.append((cell["engine_key"], cell["method"], cell["batch_size"],
                      cell["first_repetition"]))
        store.record_outcome(cell["cell_id"], w["worker_id"], lease.epoch, "done", "",
                             done_runs(1), {"engine": "vllm"}, CONFIG.max_attempts)
        warm = cell["engine_key"]
    assert len(order) == 16 and campaign_done(store, cid)
    for key in {o[0] for o in order}:
        rounds = [o[3] for o in order if o[0] == key]
        assert rounds == sorted(rounds) and set(rounds) == {0, 1}
        assert len({(m, b) for _, m, b, r in order if _ == key and r == 0}) == 4
    reps = {(r["method"], r["batch_size"], r["repetition"]) for r in store.results(cid)}
    assert reps == {(m, b, r) for m in GRID["methods"] for b in (2, 4) for r in (0, 1)}


@pytest.mark.parametrize("extra", [{"replicas": 2}, {"strategy": "active"}])
def test_interleave_refuses_replicas_and_active(extra):
    from metainf.grid import GridError, validate_grid

    with pytest.raises(GridError, match="interleave"):
        validate_grid({**GRID, "interleave": True, **extra})
