"""Active campaigns on a real coordinator: batches the serving model ranks, and the stops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from farm_reports import report_for

from metainf.client import channel
from metainf.coordinator.active import ActiveConfig, ActivePlanner
from metainf.coordinator.retrain import RetrainConfig
from metainf.coordinator.scheduler import SchedulerConfig, next_lease
from metainf.coordinator.server import ServerConfig, create_server
from metainf.coordinator.store import Store
from metainf.v1 import farm_pb2, farm_pb2_grpc

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference-p" / "p.parquet"
METHODS = ["none", "cb", "pc", "cb+pc"]
WORKLOAD = {"dataset": "synthetic-shared-prefix", "num_prompts": 24, "batch_size": [8, 16],
            "max_output_tokens": 16, "seed": 0}
GRID = {"name": "act", "models": ["llama-tiny", "qwen2-tiny"], "methods": METHODS,
        "workloads": [WORKLOAD], "repetitions": 1, "strategy": "active"}
"""4 tasks (2 models x 2 batch sizes) x 4 methods = 16 cells on one hardware class."""

RUNTIME = {"none": 4.0, "cb": 2.0, "pc": 3.0, "cb+pc": 1.0}
"""The fake engine: every cell of a method takes this long."""


def _profile() -> farm_pb2.HardwareProfile:
    """The reference P's 1-core class: hardware the model was trained on."""
    meta = json.loads(REFERENCE.with_name("p.parquet.meta.json").read_text(encoding="utf-8"))
    prof = next(h["profile"] for label, h in meta["hardware"].items() if "-1c-" in label)
    return farm_pb2.HardwareProfile(**{k: v for k, v in prof.items()
                                       if k in farm_pb2.HardwareProfile.DESCRIPTOR.fields_by_name})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small MetaInf trained on the reference P (the serving model)."""
    from metainf.selector.embeddings import Embedder
    from metainf.selector.table import PerfTable
    from metainf.selector.training import train

    tmp = tmp_path_factory.mktemp("active-model")
    train(PerfTable.load(REFERENCE), tmp / "models", style="basic", svd_k=4,
          embedder=Embedder(cache_dir=tmp / "emb"), n_estimators=20, search=False)
    return tmp / "models"


@pytest.fixture
def farm(tmp_path, model_dir):
    """A coordinator serving the model, no retraining, half a class's cells per batch."""
    coord = create_server(ServerConfig(
        db=tmp_path / "farm.db", port=0, model_dir=model_dir,
        retrain=RetrainConfig(on_campaign_done=False),
        scheduler=SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0, idle_retry_s=0.2),
        active=ActiveConfig(batch_share=0.5)))
    ch = channel(f"127.0.0.1:{coord.port}")
    yield coord, farm_pb2_grpc.CoordinatorStub(ch), farm_pb2_grpc.SelectorStub(ch)
    ch.close()
    coord.stop(grace=0)


def _register(stub) -> str:
    return stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="w1", hardware=_profile(), price_per_hour=0.1, engines=["vllm"]),
        timeout=10).worker_id


def _submit(stub, **extra) -> str:
    return stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(
        grid_json=json.dumps({**GRID, **extra})), timeout=60).campaign_id


def _run(stub, worker_id: str, limit: int = 100) -> list[farm_pb2.CellSpec]:
    """Lease and report cells (the fake engine) until none is offered; the leased cells."""
    leased = []
    for _ in range(limit):
        cell = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker_id), timeout=60).cell
        if not cell.cell_id:
            break
        leased.append(cell)
        stub.ReportResult(report_for(worker_id, cell, RUNTIME[cell.method]), timeout=10)
    return leased


def test_an_active_campaign_leases_each_tasks_choice_and_rival_first(farm):
    coord, stub, selector = farm
    worker = _register(stub)
    cid = _submit(stub)
    first = [stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker), timeout=60).cell
             for _ in range(8)]
    assert all(c.cell_id for c in first)
    tasks = [(c.model, c.batch_size) for c in first]
    # Half the class's 16 cells per batch: two of every task (its choice and closest
    # rival), not grid order (which runs llama-tiny's 8 cells first).
    assert sorted(tasks) == sorted([(m, b) for m in GRID["models"] for b in (8, 16)] * 2)
    hardware = coord.store.query("SELECT label FROM hardware_classes")[0]["label"]
    for model in GRID["models"]:
        for batch in (8, 16):
            answer = selector.Select(farm_pb2.SelectRequest(
                model=model, hardware=[farm_pb2.HardwareOption(name=hardware)],
                methods=METHODS, workload_json=json.dumps(
                    {"workload": "synthetic-shared-prefix-n24-o16-s0", "batch_size": batch})),
                timeout=60)
            mine = {c.method for c in first if (c.model, c.batch_size) == (model, batch)}
            assert answer.method in mine, (model, batch, answer.method, mine)
    # Nothing more until the batch is measured (the next one is ranked on its results).
    assert not stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker), timeout=60).cell.cell_id
    for c in first:
        stub.ReportResult(report_for(worker, c, RUNTIME[c.method]), timeout=10)
    rest = _run(stub, worker)
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=cid), timeout=10)
    assert status.state == "done"
    assert len(first) + len(rest) + status.cells["skipped"] == 16


def test_an_active_campaign_stops_at_max_cells_and_says_why(farm):
    coord, stub, _ = farm
    worker = _register(stub)
    cid = _submit(stub, max_cells=5, confidence=1.0)
    leased = _run(stub, worker)
    assert len(leased) == 5
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=cid), timeout=10)
    assert status.state == "done"
    assert status.cells["skipped"] == 11 and status.cells["done"] == 5
    reasons = {r["error"] for r in coord.store.query(
        "SELECT error FROM cells WHERE campaign_id=? AND status='skipped'", (cid,))}
    assert reasons == {"skipped: the active campaign reached max_cells 5"}
    assert status.strategy == "active" and status.strategy_note == reasons.pop()


def test_an_active_campaign_whose_tasks_are_decided_measures_nothing_more(farm):
    coord, stub, _ = farm
    worker = _register(stub)
    cid = _submit(stub, confidence=0.0)  # any choice is decided at confidence 0
    assert _run(stub, worker) == []
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=cid), timeout=10)
    assert status.state == "done" and status.cells["skipped"] == 16
    reason = coord.store.query("SELECT DISTINCT error FROM cells WHERE campaign_id=?", (cid,))
    assert [r["error"] for r in reason] == [
        "skipped: every task of the active campaign is decided at confidence >= 0"]
    assert status.strategy_note == reason[0]["error"]


def test_a_full_campaign_is_untouched_by_the_planner(tmp_path):
    from metainf.coordinator import campaigns

    store = Store(tmp_path / "farm.db")
    try:
        cid, n = campaigns.create(store, {**GRID, "strategy": "full"})
        wid = store.register_worker("w", "hw1", "label-hw1", {"kind": "cpu"}, 0.1, "test")
        worker = store.worker(wid)
        planner = ActivePlanner(store, lambda: None)
        seqs = []
        for _ in range(n):
            lease = next_lease(store, worker, "", SchedulerConfig(), planner)
            seqs.append(lease.cell["seq"])
        assert sorted(seqs) == list(range(n))
        assert store.cell_counts(cid) == {"leased": n}
    finally:
        store.close()


def test_each_finished_batch_asks_for_a_retraining(tmp_path):
    from metainf.coordinator import campaigns

    store = Store(tmp_path / "farm.db")
    try:
        cid, _ = campaigns.create(store, GRID)
        wid = store.register_worker("w", "hw1", "label-hw1", {"kind": "cpu"}, 0.1, "test")
        worker = store.worker(wid)
        asked: list[str] = []
        planner = ActivePlanner(store, lambda: None, ActiveConfig(batch_share=0.25),
                                on_batch=asked.append)
        config = SchedulerConfig()
        leases = [next_lease(store, worker, "", config, planner) for _ in range(4)]
        assert all(leases) and next_lease(store, worker, "", config, planner) is None
        assert asked == []
        for lease in leases:  # no model serves: grid order, batches of 4
            store.record_outcome(lease.cell["cell_id"], wid, lease.epoch, "done", "",
                                 [{"repetition": 0, "status": "done", "runtime_s": 1.0}],
                                 {"engine": "vllm"}, max_attempts=3)
        assert next_lease(store, worker, "", config, planner) is not None
        assert asked == [f"active campaign {cid}: batch 1 done"]
        assert sorted(lease.cell["seq"] for lease in leases) == [0, 1, 2, 3]
    finally:
        store.close()
