"""The worker measures its RTT to the coordinator and reports it with its heartbeat."""

from __future__ import annotations

import socket
import time

import grpc
import pytest

from metainf.client import channel
from metainf.v1 import farm_pb2, farm_pb2_grpc
from metainf.worker.agent import WorkerAgent, WorkerConfig
from metainf.worker.rtt import measure_rtt


def test_rtt_to_a_live_coordinator_is_a_small_positive_time(address):
    with channel(address) as ch:
        rtt = measure_rtt(ch)
    assert 0.0 < rtt < 1.0


def test_rtt_to_nothing_is_zero_and_quick():
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert measure_rtt(ch, probes=2, timeout_s=1.0) == 0.0
    assert time.perf_counter() - t0 < 5.0


def test_a_heartbeat_carries_the_rtt_the_coordinator_then_lists(address):
    agent = WorkerAgent(WorkerConfig(coordinator=address, name="w-rtt"))
    agent.worker_id = agent.stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="w-rtt", hardware=farm_pb2.HardwareProfile(**agent.profile)), timeout=10).worker_id
    listed = farm_pb2_grpc.CoordinatorStub(agent.channel).ListWorkers
    assert listed(farm_pb2.ListWorkersRequest(), timeout=10).workers[0].rtt_s == 0.0
    assert agent.heartbeat().known
    rtt = listed(farm_pb2.ListWorkersRequest(), timeout=10).workers[0].rtt_s
    assert 0.0 < rtt < 1.0
    # a heartbeat without an RTT (an older worker) keeps the last one reported
    agent.stub.Heartbeat(farm_pb2.HeartbeatRequest(worker_id=agent.worker_id), timeout=10)
    assert listed(farm_pb2.ListWorkersRequest(), timeout=10).workers[0].rtt_s == rtt


def _agent(address, name):
    agent = WorkerAgent(WorkerConfig(coordinator=address, name=name,
                                     engine="fake_engines:MethodEngine"))
    agent.register()
    return agent


def test_workers_time_each_others_echo_and_place_uses_it(address):
    """Each worker serves an echo on loopback; a heartbeat names the peers to time, the next
    carries their RTTs; ListWorkers and Place's notes show them measured, not bounded."""
    a, b = _agent(address, "echo-a"), _agent(address, "echo-b")
    try:
        listed = farm_pb2_grpc.CoordinatorStub(a.channel).ListWorkers
        first = a.heartbeat()
        assert [p.worker_id for p in first.measure_peers] == [b.worker_id]
        assert first.measure_peers[0].address.startswith("127.0.0.1:")
        assert b.worker_id in a._peer_rtts and 0.0 < a._peer_rtts[b.worker_id] < 1.0
        again = a.heartbeat()  # reports the RTT; a fresh one is not asked for again
        assert not again.measure_peers and not a._peer_rtts
        rows = {w.name: w for w in listed(farm_pb2.ListWorkersRequest(), timeout=10).workers}
        assert set(rows["echo-a"].peer_rtt_s) == {b.worker_id}
        assert 0.0 < rows["echo-a"].peer_rtt_s[b.worker_id] < 1.0
        assert not rows["echo-b"].peer_rtt_s
        b.heartbeat()  # its RTT to the coordinator (it times a now, reports it next time)
        resp = farm_pb2_grpc.PlacementStub(a.channel).Place(farm_pb2.PlaceRequest(
            model=farm_pb2.PlaceModel(catalog="llama-tiny"), petals_join_orders=2,
            load=farm_pb2.PlaceLoad(sessions=2, l_in=16, l_out=16)), timeout=60)
        assert "between workers: RTT measured echo to echo for 1 of 1 pairs" in resp.notes
        # b's echo stops: a peer that does not answer is left out, not reported as 0
        b.echo.stop(grace=None)
        a._peer_rtts.clear()
        with grpc.insecure_channel(first.measure_peers[0].address) as ch:
            assert measure_rtt(ch, probes=1, timeout_s=0.5) == 0.0
    finally:
        for agent in (a, b):
            if agent.echo is not None:
                agent.echo.stop(grace=None)
            agent.channel.close()


def test_place_notes_say_which_worker_rtts_were_measured():
    from metainf.placement.farm import FarmWorker, worker_to_worker_s

    a = FarmWorker("w-a", "a", {}, rtt_s=0.010, peer_rtt_s={"w-b": 0.004})
    b = FarmWorker("w-b", "b", {}, rtt_s=0.020, peer_rtt_s={"w-a": 0.006})
    c = FarmWorker("w-c", "c", {}, rtt_s=0.030)
    assert worker_to_worker_s(a, b) == (0.004, True)   # the faster direction
    assert worker_to_worker_s(b, a) == (0.004, True)
    assert worker_to_worker_s(a, c) == (0.040, False)  # via the coordinator: a bound
    assert worker_to_worker_s(c, FarmWorker("w-d", "d", {})) is None


def test_bad_echo_and_peer_rtts_are_invalid_argument(address):
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    profile = farm_pb2.HardwareProfile(kind="cpu", cpu_model="Test CPU", cpu_cores=1)
    with pytest.raises(grpc.RpcError) as info:
        stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(hardware=profile, echo_port=70000),
                            timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("echo_port:")
    wid = stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(hardware=profile),
                              timeout=10).worker_id
    with pytest.raises(grpc.RpcError) as info:
        stub.Heartbeat(farm_pb2.HeartbeatRequest(worker_id=wid, peer_rtt_s={"w-x": -1.0}),
                       timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("peer_rtt_s[w-x]:")
