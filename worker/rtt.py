"""The worker's round-trip time to the coordinator, reported with heartbeats for placement."""

from __future__ import annotations

import math
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBES = 3
"""Health checks per measurement; the fastest is the RTT (queueing only adds time)."""


def measure_rtt(ch: grpc.Channel, probes: int = PROBES, timeout_s: float = 5.0) -> float:
    """Seconds of the fastest of `probes` gRPC health checks on `ch`; 0.0 if none answered.

    A health check does no work on the coordinator (no token, no database), so its
    round trip is the network's plus gRPC's, what a hop of a placed request pays too.
    """
    stub = health_pb2_grpc.HealthStub(ch)
    best = math.inf
    for _ in range(probes):
        t0 = time.perf_counter()
        try:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            continue
        best = min(best, time.perf_counter() - t0)
    return best if math.isfinite(best) else 0.0
