"""Replicated cells: copies on workers of different operators, and the vote that lets one
copy into P only when copies agree. Real servers, real SQLite, tokens naming operators."""

from __future__ import annotations

import json
import sqlite3

import grpc
import pytest
from farm_reports import report_for

from metainf.client import channel
from metainf.coordinator.replication import Copy, agree, settle
from metainf.coordinator.server import ServerConfig, create_server
from metainf.coordinator.store import SCHEMA, Store
from metainf.v1 import farm_pb2, farm_pb2_grpc

OPERATORS = ("acme", "bolt", "core")
GRID = {"models": ["llama-tiny"], "methods": ["none"], "repetitions": 2, "replicas": 2,
        "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 2, "batch_size": 2,
                       "max_output_tokens": 1}]}


# -- the vote -------------------------------------------------------------------------------

def test_copies_agree_within_the_tolerance_and_on_the_same_status():
    assert agree(Copy(0, "done", (1.0, 1.1)), Copy(1, "done", (1.2,)), 0.2)
    assert not agree(Copy(0, "done", (1.0,)), Copy(1, "done", (1.3,)), 0.2)
    assert agree(Copy(0, "oom"), Copy(1, "oom"), 0.2)
    assert not agree(Copy(0, "done", (1.0,)), Copy(1, "oom"), 0.2)


def test_the_copy_most_others_agree_with_is_accepted():
    verdict = settle([Copy(0, "done", (5.0,)), Copy(1, "done", (1.0,)), Copy(2, "done", (1.1,))],
                     replicas=3, tolerance=0.2)
    assert (verdict.state, verdict.accepted_replica) == ("agreed", 1)
    assert "2 of 3 copies agree" in verdict.detail


def test_disagreement_queues_one_tiebreaker_then_is_disputed():
    two = [Copy(0, "done", (1.0,)), Copy(1, "done", (2.0,))]
    assert settle(two, replicas=2, tolerance=0.2).state == "tiebreak"
    verdict = settle([*two, Copy(2, "done", (4.0,))], replicas=2, tolerance=0.2)
    assert (verdict.state, verdict.accepted_replica) == ("disputed", None)


# -- through a real coordinator with operators ----------------------------------------------

@pytest.fixture
def farm(tmp_path):
    """A coordinator with an admin token and worker tokens of three operators."""
    lines = ["admin-token-0123456789 admin ops"]
    files = {"admin": tmp_path / "admin.token"}
    files["admin"].write_text("admin-token-0123456789\n")
    for op in OPERATORS:
        token = f"worker-token-{op}-0123456789"
        lines.append(f"{token} worker {op}")
        files[op] = tmp_path / f"{op}.token"
        files[op].write_text(token + "\n")
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n")
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0,
                                       token_file=tmp_path / "tokens.txt"))
    address = f"127.0.0.1:{coord.port}"
    yield {op: farm_pb2_grpc.CoordinatorStub(channel(address, str(f)))
           for op, f in files.items()}
    coord.stop(grace=0)


def _register(stub, name):
    return stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name=name, hardware=farm_pb2.HardwareProfile(kind="cpu", cpu_model="x", cpu_cores=1)),
        timeout=10).worker_id


def _lease(stub, worker_id):
    response = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker_id), timeout=10)
    return response.cell if response.HasField("cell") else None


def _export(stub, campaign_id, all_replicas=False):
    rows = []
    for chunk in stub.ExportResults(farm_pb2.ExportResultsRequest(
            campaign_id=campaign_id, all_replicas=all_replicas), timeout=10):
        rows.extend(chunk.rows)
    return rows


def _submit(stub, **overrides):
    grid = {**GRID, **overrides}
    return stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(grid)),
                               timeout=30).campaign_id


def _status(stub, campaign_id):
    return stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id),
                                  timeout=10)


def test_copies_go_to_different_operators_and_one_enters_p(farm):
    cid = _submit(farm["admin"])
    a1, a2 = _register(farm["acme"], "a1"), _register(farm["acme"], "a2")
    b1 = _register(farm["bolt"], "b1")
    first = _lease(farm["acme"], a1)
    assert first is not None
    # Another worker of the same operator never gets the second copy.
    assert _lease(farm["acme"], a2) is None
    second = _lease(farm["bolt"], b1)
    assert second is not None and second.cell_id != first.cell_id
    assert {first.replica, second.replica} == {0, 1}
    farm["acme"].ReportResult(report_for(a1, first, runtime=1.0), timeout=10)
    assert dict(_status(farm["admin"], cid).replica_groups) == {"waiting": 1}
    assert _export(farm["admin"], cid) == []  # nothing in P before the copies agree
    farm["bolt"].ReportResult(report_for(b1, second, runtime=1.1), timeout=10)

    status = _status(farm["admin"], cid)
    assert status.state == "done"
    assert dict(status.replica_groups) == {"agreed": 1}
    in_p = _export(farm["admin"], cid)  # on a tie the lowest replica number is accepted
    assert [(r.replica, r.run.repetition) for r in in_p] == [(0, 0), (0, 1)]
    assert all(r.accepted for r in in_p)
    audit = _export(farm["admin"], cid, all_replicas=True)
    assert sorted((r.replica, r.accepted) for r in audit) == [
        (0, True), (0, True), (1, False), (1, False)]


def test_disagreeing_copies_get_a_tiebreaker_from_a_third_operator(farm):
    cid = _submit(farm["admin"])
    a, b, c = (_register(farm[op], op) for op in OPERATORS)
    copy_a, copy_b = _lease(farm["acme"], a), _lease(farm["bolt"], b)
    farm["acme"].ReportResult(report_for(a, copy_a, runtime=1.0), timeout=10)
    farm["bolt"].ReportResult(report_for(b, copy_b, runtime=2.0), timeout=10)

    status = _status(farm["admin"], cid)
    assert status.state == "running" and status.cells["pending"] == 1
    assert _lease(farm["acme"], a) is None and _lease(farm["bolt"], b) is None
    tiebreak = _lease(farm["core"], c)
    assert tiebreak.replica == 2
    farm["core"].ReportResult(report_for(c, tiebreak, runtime=1.9), timeout=10)

    status = _status(farm["admin"], cid)
    assert status.state == "done" and dict(status.replica_groups) == {"agreed": 1}
    assert {r.replica for r in _export(farm["admin"], cid)} == {copy_b.replica}
    assert len(_export(farm["admin"], cid, all_replicas=True)) == 6


def test_copies_that_never_agree_are_disputed_and_stay_out_of_p(farm):
    cid = _submit(farm["admin"], replica_tolerance=0.05)
    a, b, c = (_register(farm[op], op) for op in OPERATORS)
    for op, wid, runtime in (("acme", a, 1.0), ("bolt", b, 1.5)):
        farm[op].ReportResult(report_for(wid, _lease(farm[op], wid), runtime=runtime),
                              timeout=10)
    farm["core"].ReportResult(report_for(c, _lease(farm["core"], c), runtime=2.2), timeout=10)
    status = _status(farm["admin"], cid)
    assert status.state == "done" and dict(status.replica_groups) == {"disputed": 1}
    assert _export(farm["admin"], cid) == []
    assert len(_export(farm["admin"], cid, all_replicas=True)) == 6


def test_an_open_farm_puts_copies_on_different_workers(address):
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    cid = _submit(stub)
    w1, w2 = _register(stub, "w1"), _register(stub, "w2")
    copy = _lease(stub, w1)
    stub.ReportResult(report_for(w1, copy), timeout=10)
    assert _lease(stub, w1) is None
    other = _lease(stub, w2)
    assert other is not None and other.replica != copy.replica
    stub.ReportResult(report_for(w2, other, runtime=1.05), timeout=10)
    assert dict(_status(stub, cid).replica_groups) == {"agreed": 1}


def test_a_worker_of_the_same_operator_is_refused_the_copy_even_when_idle(farm):
    _submit(farm["admin"])
    a1 = _register(farm["acme"], "a1")
    assert _lease(farm["acme"], a1) is not None
    with pytest.raises(grpc.RpcError) as info:  # and nobody may lease for another operator
        farm["bolt"].LeaseCell(farm_pb2.LeaseCellRequest(worker_id=a1), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


# -- an older database gains the new columns without losing rows ----------------------------

def test_an_older_database_is_migrated_in_place(tmp_path):
    old_schema = "\n".join(line for line in SCHEMA.splitlines()
                           if not line.strip().startswith(("replicas INTEGER", "group_id TEXT",
                                                            "accepted INTEGER",
                                                            "template_json TEXT")))
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO campaigns VALUES ('c-1', 'old', '{}', '{}', 0)")
    conn.commit()
    conn.close()
    store = Store(db)
    assert [c["name"] for c in store.campaigns()] == ["old"]
    columns = {r["name"] for r in store.query("PRAGMA table_info(cells)")}
    assert {"replicas", "group_id"} <= columns
    assert "accepted" in {r["name"] for r in store.query("PRAGMA table_info(results)")}
    assert "template_json" in {r["name"] for r in store.query("PRAGMA table_info(campaigns)")}
