"""Block-timing cells: the worker times one block in a child process; Place then uses it."""

from __future__ import annotations

import pytest

from metainf.client import channel
from metainf.v1 import farm_pb2, farm_pb2_grpc
from metainf.worker.agent import WorkerAgent, WorkerConfig
from metainf.worker.block_timing import run_block_timing

pytest.importorskip("torch")


def test_a_block_timing_of_a_catalog_model_is_done_in_16_bit():
    out = run_block_timing("llama-tiny", l_in=16, repeats=2, device="cpu", timeout_s=120)
    assert out["status"] == "done", out
    assert out["tau_s"] > 0 and out["tau_prefill_s"] > 0
    assert (out["device"], out["dtype"]) == ("cpu", "bfloat16") and out["torch_version"]


def test_a_block_timing_that_cannot_run_fails_as_a_result():
    out = run_block_timing("gpt-17", l_in=16, repeats=2, device="cpu", timeout_s=120)
    assert out["status"] == "failed" and "unknown model 'gpt-17'" in out["error"]
    assert "tau_s" not in out


PLACE = farm_pb2.PlaceRequest(model=farm_pb2.PlaceModel(catalog="llama-tiny"),
                              workers=["planner"],
                              load=farm_pb2.PlaceLoad(sessions=1, l_in=16, l_out=16),
                              petals_join_orders=1)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_place_queues_a_timing_a_worker_of_the_class_runs_and_place_then_uses(address,
                                                                               coordinator):
    agent = WorkerAgent(WorkerConfig(coordinator=address, name="timer",
                                     engine="fake_engines:QuickEngine", exit_when_idle_s=0.5))
    ch = channel(address)
    # "planner" has the agent's hardware class and has reported its RTT
    planner = farm_pb2_grpc.CoordinatorStub(ch).RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="planner", hardware=farm_pb2.HardwareProfile(**agent.profile)), timeout=10)
    farm_pb2_grpc.CoordinatorStub(ch).Heartbeat(farm_pb2.HeartbeatRequest(
        worker_id=planner.worker_id, rtt_s=0.002), timeout=10)
    placement = farm_pb2_grpc.PlacementStub(ch)
    first = placement.Place(PLACE, timeout=60)
    assert first.servers[0].tau_estimated  # nothing measured yet: a timing is queued
    # the agent (same class) leases the timing instead of a cell, runs it, reports, idles out
    assert agent.run() == 0
    timing = coordinator.store.block_timing(planner.hardware_class, "llama-tiny")
    assert timing["status"] == "done" and timing["worker_id"] == agent.worker_id
    second = placement.Place(PLACE, timeout=60)
    server = second.servers[0]
    assert server.name == "planner" and not server.tau_estimated
    assert server.tau_ms == pytest.approx(timing["tau_s"] * 1e3)
    assert any("measured by a block timing" in n for n in second.notes)
    # a request that stores blocks in 4 bits cannot use a 16-bit timing: estimated again
    nf4 = farm_pb2.PlaceRequest()
    nf4.CopyFrom(PLACE)
    nf4.model.weight_bits = 4.25
    assert placement.Place(nf4, timeout=60).servers[0].tau_estimated
    # block timings never enter P: no campaign, no result row
    assert coordinator.store.query("SELECT COUNT(*) AS n FROM results")[0]["n"] == 0
