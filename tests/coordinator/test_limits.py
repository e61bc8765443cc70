"""Load shedding: Select traffic beyond its limit is refused and never starves workers."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest

from metainf.coordinator.limits import ConcurrencyLimitInterceptor, Limits, group_of


def test_groups():
    assert group_of("/metainf.v1.Selector/Select") == "select"
    assert group_of("/metainf.v1.Coordinator/LeaseCell") == "worker"
    assert group_of("/metainf.v1.Coordinator/ExportResults") == "client"
    assert group_of("/grpc.health.v1.Health/Check") is None


@pytest.fixture
def server():
    release = threading.Event()

    def slow_select(request, context):
        release.wait(10)
        return b"selected"

    def heartbeat(request, context):
        return b"alive"

    handlers = grpc.method_handlers_generic_handler("metainf.v1.Selector", {
        "Select": grpc.unary_unary_rpc_method_handler(slow_select)})
    worker = grpc.method_handlers_generic_handler("metainf.v1.Coordinator", {
        "Heartbeat": grpc.unary_unary_rpc_method_handler(heartbeat)})
    limits = Limits(worker=2, select=1, client=1)
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=limits.threads + 2),
                      interceptors=[ConcurrencyLimitInterceptor(limits)])
    srv.add_generic_rpc_handlers((handlers, worker))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield grpc.insecure_channel(f"127.0.0.1:{port}"), release
    release.set()
    srv.stop(0)


def test_excess_select_is_shed_while_workers_are_served(server):
    channel, release = server
    select = channel.unary_unary("/metainf.v1.Selector/Select")
    heartbeat = channel.unary_unary("/metainf.v1.Coordinator/Heartbeat")
    first = select.future(b"", timeout=10)
    time.sleep(0.3)  # the first Select now holds the only select slot
    with pytest.raises(grpc.RpcError) as info:
        select(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "select" in info.value.details()
    assert heartbeat(b"", timeout=5) == b"alive"
    release.set()
    assert first.result() == b"selected"
    assert select(b"", timeout=5) == b"selected"  # the slot is free again
