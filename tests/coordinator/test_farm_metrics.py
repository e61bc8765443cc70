"""FarmMetrics and the MetricsInterceptor on a real gRPC server with real stubs."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from metainf.client import TokenClientInterceptor
from metainf.coordinator.auth import Identity, TokenAuthInterceptor
from metainf.coordinator.farm_metrics import FarmMetrics, MetricsInterceptor
from metainf.coordinator.service import CoordinatorServicer
from metainf.coordinator.store import Store
from metainf.v1 import farm_pb2, farm_pb2_grpc

TOKEN = "metrics-token-0123456789"


class FakeSelector(farm_pb2_grpc.SelectorServicer):
    """Select answers at once; ReloadModel sets a code without aborting."""

    def Select(self, request, context):
        if request.model == "boom":
            raise RuntimeError("selector bug")
        if not request.model:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model: required")
        return farm_pb2.SelectResponse(method="pc", feasible=True)

    def ReloadModel(self, request, context):
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("no trained model")
        return farm_pb2.ReloadModelResponse()


@pytest.fixture
def served(tmp_path):
    store = Store(tmp_path / "farm.db")
    metrics = FarmMetrics(store)
    auth = TokenAuthInterceptor({TOKEN: Identity("admin", "ops")})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=[MetricsInterceptor(metrics), auth])
    farm_pb2_grpc.add_CoordinatorServicer_to_server(CoordinatorServicer(store), server)
    farm_pb2_grpc.add_SelectorServicer_to_server(FakeSelector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    plain = grpc.insecure_channel(f"127.0.0.1:{port}")
    authed = grpc.intercept_channel(plain, TokenClientInterceptor(TOKEN))
    yield metrics, plain, authed
    server.stop(0).wait()
    store.close()


def errors(metrics: FarmMetrics) -> dict[tuple[str, str], float]:
    return {k: v for k, v in metrics.rpc_error_counts().items() if v}


def test_interceptor_counts_codes_by_method(served):
    metrics, plain, authed = served
    coord = farm_pb2_grpc.CoordinatorStub(authed)
    assert coord.ListWorkers(farm_pb2.ListWorkersRequest(), timeout=5).workers == []
    assert errors(metrics) == {}
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            coord.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id="c-x"),
                                    timeout=5)
    with pytest.raises(grpc.RpcError) as info:  # aborts inside a streaming handler
        list(coord.ExportResults(farm_pb2.ExportResultsRequest(campaign_id="c-x"), timeout=5))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:  # refused by the auth interceptor behind it
        farm_pb2_grpc.CoordinatorStub(plain).ListWorkers(farm_pb2.ListWorkersRequest(),
                                                         timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert errors(metrics) == {
        ("metainf.v1.Coordinator/GetCampaignStatus", "NOT_FOUND"): 2,
        ("metainf.v1.Coordinator/ExportResults", "NOT_FOUND"): 1,
        ("metainf.v1.Coordinator/ListWorkers", "UNAUTHENTICATED"): 1,
    }


def test_interceptor_times_select_and_reads_set_code(served):
    metrics, _, authed = served
    sel = farm_pb2_grpc.SelectorStub(authed)
    for _ in range(3):
        assert sel.Select(farm_pb2.SelectRequest(model="llama-tiny"), timeout=5).method == "pc"
    with pytest.raises(grpc.RpcError) as info:
        sel.Select(farm_pb2.SelectRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        sel.Select(farm_pb2.SelectRequest(model="boom"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError) as info:
        sel.ReloadModel(farm_pb2.ReloadModelRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    summary = metrics.select_summary()
    assert summary["count"] == 3  # only answered calls are timed
    assert 0 < summary["p50_s"] <= summary["p99_s"] < 5
    assert errors(metrics) == {
        ("metainf.v1.Selector/Select", "INVALID_ARGUMENT"): 1,
        ("metainf.v1.Selector/Select", "UNKNOWN"): 1,
        ("metainf.v1.Selector/ReloadModel", "FAILED_PRECONDITION"): 1,
    }


def test_counters_and_store_gauges_in_text_format(served):
    metrics, _, authed = served
    farm_pb2_grpc.CoordinatorStub(authed).RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="w", hardware=farm_pb2.HardwareProfile(kind="cpu", cpu_model="x", cpu_cores=1)),
        timeout=5)
    metrics.lease_expired(3)
    metrics.lease_expired(0)
    metrics.retried()
    metrics.rejected("stale")
    metrics.rejected("stale")
    metrics.rpc_error("metainf.v1.Coordinator/LeaseCell", "PERMISSION_DENIED")
    got = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("metainf_lease_expiries_total", ())] == 3
    assert got[("metainf_cell_retries_total", ())] == 1
    assert got[("metainf_result_rejections_total", (("reason", "stale"),))] == 2
    assert got[("metainf_rpc_errors_total", (("code", "PERMISSION_DENIED"),
                                             ("method", "metainf.v1.Coordinator/LeaseCell")))] == 1
    assert got[("metainf_workers", (("state", "alive"),))] == 1
    assert got[("metainf_cells", (("state", "pending"),))] == 0
    assert got[("metainf_select_latency_seconds_bucket", (("le", "0.0005"),))] == 0
    assert got[("metainf_select_latency_seconds_bucket", (("le", "1.0"),))] == 0


def test_closed_store_scrapes_without_gauges(tmp_path):
    store = Store(tmp_path / "farm.db")
    metrics = FarmMetrics(store)
    store.close()
    text = metrics.exposition().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "metainf_cells" not in names and "metainf_rpc_errors" in names
