"""The worker measures its RTT to the coordinator and reports it with its heartbeat."""

from __future__ import annotations

import socket
import time

import grpc

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
