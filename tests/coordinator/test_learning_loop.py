"""The whole learning loop with no person in it, on a real coordinator (gRPC on port 0,
SQLite) and a real worker agent (fake engine): a campaign ends and the coordinator trains
and serves a model; an unsure Select queues cells; the worker runs them; the coordinator
retrains on them by itself; the same Select answers from the measurement."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from farm_reports import report_for

from metainf.client import channel
from metainf.coordinator.retrain import RetrainConfig
from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.server import ServerConfig, create_server
from metainf.coordinator.unsure import UnsureConfig
from metainf.v1 import farm_pb2, farm_pb2_grpc
from metainf.worker.agent import WorkerAgent, WorkerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))  # fake_engines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

METHODS = ["none", "cb", "pc", "cb+pc"]
WORKLOAD = {"dataset": "synthetic-shared-prefix", "num_prompts": 8, "max_output_tokens": 4,
            "options": {"prefix_tokens": 64, "suffix_tokens": 8}}
GRID = {"name": "small-batches", "models": ["llama-tiny", "qwen2-tiny"], "methods": METHODS,
        "workloads": [{**WORKLOAD, "batch_size": [4, 8]}], "repetitions": 2}
"""Batch sizes 4 and 8 only: there the methods are closer than runs vary
(fake_engines.BatchEngine)."""
QUESTION = {"model": "llama-tiny", "workload_json": json.dumps({**WORKLOAD, "batch_size": 16})}
BELOW = 0.9


def _other_class(stub) -> str:
    """A second hardware class (reported by hand, methods tied) so that a model can learn
    across hardware; returns its worker id."""
    return stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="other", hardware=farm_pb2.HardwareProfile(
            kind="cpu", cpu_model="Test CPU 32", cpu_cores=32, ram_gb=64, isa_flags=["avx2"]),
        price_per_hour=0.1, engines=["vllm"]), timeout=10).worker_id


def _run_by_hand(stub, worker_id: str) -> int:
    """Lease and report the rest of this class's cells: methods 1-2 % apart, runs 3 %."""
    rng, n = random.Random(0), 0
    while (resp := stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker_id),
                                  timeout=10)).HasField("cell"):
        tie = {"none": 1.0, "cb": 0.99, "pc": 0.99, "cb+pc": 0.98}[resp.cell.method]
        stub.ReportResult(report_for(worker_id, resp.cell, 0.3 * tie * rng.uniform(0.97, 1.03)),
                          timeout=10)
        n += 1
    return n


def test_the_farm_learns_what_it_was_unsure_of_with_no_person_in_the_loop(tmp_path):
    coord = create_server(ServerConfig(
        db=tmp_path / "farm.db", port=0, model_dir=tmp_path / "models",
        retrain=RetrainConfig(poll_s=0.2, train_options={"n_estimators": 60, "search": False}),
        unsure=UnsureConfig(below=BELOW),
        scheduler=SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0, idle_retry_s=0.2)))
    address = f"127.0.0.1:{coord.port}"
    agent = WorkerAgent(WorkerConfig(coordinator=address, name="here",
                                     engine="fake_engines:BatchEngine", exit_when_idle_s=0.5))
    ch = channel(address)
    try:
        stub, selector = farm_pb2_grpc.CoordinatorStub(ch), farm_pb2_grpc.SelectorStub(ch)
        other = _other_class(stub)
        stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(GRID)),
                            timeout=30)
        held = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=other), timeout=10).cell
        stub.ReportResult(report_for(other, held, 0.3), timeout=10)  # its class is bound
        assert agent.run() == 16  # registers, runs its class's cells, idles out
        assert _run_by_hand(stub, other) == 15
        # The campaign ended: the coordinator trained and promoted v1 by itself.
        assert coord.retrainer.wait_idle(240)
        first_train = coord.retrainer.history[-1]
        assert first_train["outcome"] == "promoted", first_train
        here = coord.store.worker(agent.worker_id)["hardware_label"]

        def ask():
            return selector.Select(farm_pb2.SelectRequest(
                **QUESTION, hardware=[farm_pb2.HardwareOption(name=here)],
                measure_if_unsure=True), timeout=60)

        first = ask()
        assert first.model_version == first_train["version"]
        assert first.confidence < BELOW and first.measure_campaign_id, [
            (c.method, c.predicted, c.interval.low, c.interval.high) for c in first.candidates]
        # A worker of the class comes back and runs what was queued; nobody retrains or
        # reloads anything.
        back = WorkerAgent(WorkerConfig(coordinator=address, name="back",
                                        engine="fake_engines:BatchEngine", exit_when_idle_s=0.5))
        assert back.run() == UnsureConfig().top_k
        back.channel.close()
        assert coord.retrainer.wait_idle(240)
        second_train = coord.retrainer.history[-1]
        assert second_train["outcome"] == "promoted", second_train
        assert second_train["trigger"] == f"campaign {first.measure_campaign_id} done"
        # promoted: the fit on every task, the measured one included
        assert second_train["record"]["tasks"] == first_train["record"]["tasks"] + 1
        after = ask()
        assert after.model_version == second_train["version"] != first.model_version
        measured = [c.method for c in first.candidates if c.feasible][:UnsureConfig().top_k]
        # BatchEngine at batch 16: cb x 0.25, pc x 0.7; the best measured method wins.
        factor = {"none": 1.0, "cb": 0.25, "pc": 0.7, "cb+pc": 0.175}
        assert after.method == min(measured, key=factor.__getitem__)
        assert after.measure_campaign_id == first.measure_campaign_id
        assert after.measure_note.startswith(f"measured: campaign {first.measure_campaign_id}")
    finally:
        ch.close()
        agent.channel.close()
        coord.stop(grace=0)
