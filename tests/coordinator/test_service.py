"""The Coordinator service through a real gRPC server on port 0 and real stubs."""

from __future__ import annotations

import json
import math

import grpc
import pytest
from farm_reports import report_for
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metainf.cli import main as cli_main
from metainf.client import channel, export_campaign
from metainf.p import performance_array, read_p
from metainf.v1 import farm_pb2, farm_pb2_grpc

GRID = {
    "name": "svc", "models": ["llama-tiny"], "methods": ["none", "pc"],
    "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4, "batch_size": 2,
                   "max_output_tokens": 2}],
    "repetitions": 2,
}
PROFILE = farm_pb2.HardwareProfile(kind="cpu", cpu_model="Test CPU", cpu_cores=1, ram_gb=8,
                                   isa_flags=["avx2"])


@pytest.fixture
def stub(address):
    return farm_pb2_grpc.CoordinatorStub(channel(address))


def register(stub, name="w0"):
    return stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name=name, hardware=PROFILE, price_per_hour=0.1, engines=["vllm"]), timeout=10)


def submit(stub, grid=GRID):
    return stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(grid)),
                               timeout=30)


def report(stub, worker_id, cell, runtime=1.0, status="done"):
    return stub.ReportResult(report_for(worker_id, cell, runtime, status), timeout=10)


def test_health_and_reflection(address):
    ch = channel(address)
    resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""),
                                                timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    answers = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]), timeout=5)
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"metainf.v1.Coordinator", "metainf.v1.Selector", "grpc.health.v1.Health"} <= names


def test_full_cell_cycle_and_export(stub, address, tmp_path):
    campaign_id = submit(stub).campaign_id
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id))
    assert status.state == "queued"
    wid = register(stub).worker_id
    leased = []
    while True:
        resp = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=wid), timeout=10)
        if not resp.HasField("cell"):
            break
        leased.append(resp.cell)
        assert report(stub, wid, resp.cell).stored == 2
    assert {c.method for c in leased} == {"none", "pc"}
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id))
    assert status.state == "done" and status.cells["done"] == 2
    out = export_campaign(address, campaign_id, tmp_path / "p.csv")
    frame, meta = read_p(out)
    assert len(frame) == 4
    assert set(frame["prefix_caching"]) == {0, 1}
    assert (frame.loc[frame.method == "pc", "prefix_caching"] == 1).all()
    assert math.isnan(frame["energy_j"].iloc[0])
    assert list(meta["hardware"].values())[0]["price_per_hour"] == pytest.approx(0.1)
    assert meta["workloads"] and meta["models"]["llama-tiny"]["summary"]
    arr = performance_array(frame)
    assert arr.values.shape == (1, 2, 1)


@pytest.mark.parametrize("mutate, code, text", [
    (lambda r: r.runs[0].__setattr__("runtime_s", float("nan")), "INVALID_ARGUMENT", "runtime_s"),
    (lambda r: r.runs[0].__setattr__("peak_mem_gb", -1.0), "INVALID_ARGUMENT", "peak_mem_gb"),
    (lambda r: r.__setattr__("status", "great"), "INVALID_ARGUMENT", "status"),
    (lambda r: r.__setattr__("cell_id", "nope"), "NOT_FOUND", "nope"),
    (lambda r: r.__setattr__("epoch", 99), "PERMISSION_DENIED", "not leased to"),
    (lambda r: r.__setattr__("worker_id", "w-ghost"), "NOT_FOUND", "w-ghost"),
])
def test_bad_reports_are_refused_and_store_nothing(stub, mutate, code, text):
    submit(stub)
    wid = register(stub).worker_id
    cell = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=wid)).cell
    req = report_for(wid, cell)
    mutate(req)
    with pytest.raises(grpc.RpcError) as info:
        stub.ReportResult(req, timeout=10)
    assert info.value.code().name == code
    assert text in info.value.details()
    # the good report still goes through afterwards: nothing half-stored
    assert report(stub, wid, cell).stored == 2


def test_bad_grid_and_unknown_ids(stub):
    with pytest.raises(grpc.RpcError) as info:
        submit(stub, {**GRID, "methods": ["warp"]})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "warp" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(campaign_id="c-x"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id="w-ghost"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_submit_status_and_bad_grid(address, tmp_path, capsys):
    good = tmp_path / "grid.yaml"
    good.write_text(json.dumps(GRID))
    assert cli_main(["campaign", "submit", str(good), "--coordinator", address]) == 0
    campaign_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert campaign_id.startswith("c-")
    assert cli_main(["campaign", "status", campaign_id, "--coordinator", address,
                     "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "queued" and status["cells"] == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**GRID, "workloads": [{**GRID["workloads"][0],
                                                      "batch_size": -4}]}))
    assert cli_main(["campaign", "submit", str(bad), "--coordinator", address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_size" in err[0]
    assert cli_main(["campaign", "status", "c-missing", "--coordinator", address]) == 1
    assert capsys.readouterr().err.startswith("NOT_FOUND")
