"""The Selector gRPC service through a real server on port 0: answers and status codes."""

from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest
from synthetic_tables import external_table, shared_embedder, winner

from metainf.selector.service import SelectorServicer
from metainf.selector.training import train
from metainf.v1 import farm_pb2, farm_pb2_grpc

WORKLOAD = json.dumps({"Input Output Length": 512, "Batch Size": 16})


def serve(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    farm_pb2_grpc.add_SelectorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, farm_pb2_grpc.SelectorStub(channel)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    train(external_table(), d, svd_k=8, embedder=shared_embedder(), n_estimators=150)
    return d


@pytest.fixture(scope="module")
def stub(model_dir):
    server, channel, stub = serve(SelectorServicer(model_dir, warm_up=False))
    yield stub
    channel.close()
    server.stop(0)


def request(**kw):
    base = {"model": "Llama-2-7b", "workload_json": WORKLOAD,
            "hardware": [farm_pb2.HardwareOption(text="NVIDIA H200 141GB HBM3e")]}
    base.update(kw)
    return farm_pb2.SelectRequest(**base)


def test_select_answers_for_unseen_gpu(stub):
    resp = stub.Select(request(budget=10.0), timeout=30)
    assert resp.method == winner("H100 SXM") and resp.feasible
    assert resp.nearest_known_hardware["NVIDIA H200 141GB HBM3e"] == "H100 SXM"
    assert len(resp.candidates) == 3 and resp.model_version
    assert resp.metric == "Latency" and resp.lower_is_better
    assert all(c.cost > 0 for c in resp.candidates)


def test_price_override_goes_through(stub):
    resp = stub.Select(request(hardware=[farm_pb2.HardwareOption(
        name="L4", price_per_hour=3600.0)]), timeout=30)
    assert all(c.cost == pytest.approx(c.predicted) for c in resp.candidates)


@pytest.mark.parametrize("kw, needle", [
    ({"budget": -1.0}, "budget"),
    ({"budget": float("nan")}, "budget"),
    ({"methods": ["warp-drive"]}, "warp-drive"),
    ({"model": ""}, "model"),
    ({"workload_json": "{oops"}, "workload"),
])
def test_bad_input_is_invalid_argument(stub, kw, needle):
    with pytest.raises(grpc.RpcError) as err:
        stub.Select(request(**kw), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_no_model_is_failed_precondition_until_trained(tmp_path):
    servicer = SelectorServicer(tmp_path / "models", warm_up=False)
    server, channel, stub = serve(servicer)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Select(request(), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "metainf train" in err.value.details() and "--model-dir" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            stub.ReloadModel(farm_pb2.ReloadModelRequest(), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        trained = train(external_table(), tmp_path / "models", style="basic", svd_k=4,
                        embedder=shared_embedder(), n_estimators=20)
        resp = stub.ReloadModel(farm_pb2.ReloadModelRequest(), timeout=30)
        assert resp.model_version == trained.version
        assert stub.Select(request(), timeout=30).model_version == trained.version
    finally:
        channel.close()
        server.stop(0)


def test_no_model_dir_at_all_is_failed_precondition():
    server, channel, stub = serve(SelectorServicer(None, warm_up=False))
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.Select(request(), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        channel.close()
        server.stop(0)


def test_all_farm_hardware_adds_registered_classes(model_dir):
    farm = [("L4", {"kind": "gpu", "accelerator": "NVIDIA L4", "accelerator_count": 1},
             0.8),
            ("gpu-h200", {"kind": "gpu", "accelerator": "NVIDIA H200 141GB HBM3e",
                          "accelerator_count": 1, "accelerator_memory_gb": 141}, 8.0)]
    server, channel, stub = serve(SelectorServicer(model_dir, farm_hardware=lambda: farm,
                                                   warm_up=False))
    try:
        resp = stub.Select(request(hardware=[], all_farm_hardware=True), timeout=30)
        assert {c.hardware for c in resp.candidates} == {"L4", "gpu-h200"}
        assert resp.nearest_known_hardware["gpu-h200"] == "H100 SXM"
    finally:
        channel.close()
        server.stop(0)


def test_reload_answers_once_the_embedding_model_is_warm(model_dir):
    servicer = SelectorServicer(model_dir, warm_up=True)
    server, channel, stub = serve(servicer)
    try:
        stub.ReloadModel(farm_pb2.ReloadModelRequest(), timeout=60)
        assert servicer.model.nearest_embedder()._models  # loaded before the answer
    finally:
        channel.close()
        server.stop(0)
