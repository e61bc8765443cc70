"""Untrusted results: implausible reports are flagged, re-run elsewhere, liars quarantined."""

from __future__ import annotations

import json

import grpc
import pytest
from farm_reports import report_for

from metainf.client import channel
from metainf.coordinator.plausibility import check_against_class
from metainf.v1 import farm_pb2, farm_pb2_grpc

GRID = {"name": "p", "models": ["llama-tiny"], "methods": ["none", "cb", "pc", "cb+pc"],
        "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4, "batch_size": 2,
                       "max_output_tokens": 3}], "repetitions": 2}
PROFILE = farm_pb2.HardwareProfile(kind="cpu", cpu_model="Test CPU", cpu_cores=1, ram_gb=8)


@pytest.fixture
def stub(address):
    s = farm_pb2_grpc.CoordinatorStub(channel(address))
    s.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(GRID)), timeout=30)
    return s


def register(stub, name):
    return stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(name=name, hardware=PROFILE),
                               timeout=10).worker_id


def lease(stub, wid):
    return stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=wid), timeout=10)


def inflated(wid, cell):
    """A report claiming twice the tokens the workload can produce."""
    req = report_for(wid, cell)
    for run in req.runs:
        run.throughput_tok_s *= 2
    return req


def test_a_lie_is_flagged_and_the_cell_goes_to_another_worker(stub):
    liar, honest = register(stub, "liar"), register(stub, "honest")
    cell = lease(stub, liar).cell
    resp = stub.ReportResult(inflated(liar, cell), timeout=10)
    assert resp.stored == 0 and "throughput_tok_s" in resp.flagged
    again = [lease(stub, liar).cell for _ in range(3)]
    assert cell.cell_id not in {c.cell_id for c in again}  # never back to the liar
    retry = lease(stub, honest).cell
    assert retry.cell_id == cell.cell_id and retry.epoch == cell.epoch + 1
    assert stub.ReportResult(report_for(honest, retry), timeout=10).stored == 2


def test_repeated_flags_quarantine_a_worker(stub):
    liar = register(stub, "liar")
    register(stub, "honest")
    for _ in range(3):
        cell = lease(stub, liar).cell
        assert stub.ReportResult(inflated(liar, cell), timeout=10).flagged
    with pytest.raises(grpc.RpcError) as info:
        lease(stub, liar)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "quarantined" in info.value.details()
    states = {w.name: w.state for w in stub.ListWorkers(farm_pb2.ListWorkersRequest()).workers}
    assert states == {"liar": "quarantined", "honest": "alive"}


def test_percentiles_beyond_the_runtime_are_flagged(stub):
    wid = register(stub, "w")
    cell = lease(stub, wid).cell
    req = report_for(wid, cell)
    req.runs[0].ttft_p99_s = 50.0
    assert "TTFT" in stub.ReportResult(req, timeout=10).flagged


def test_far_from_the_class_median():
    runs = [{"runtime_s": 10.0}, {"runtime_s": 11.0}]
    assert check_against_class(runs, [1.0]) is None  # one peer is not enough to judge
    assert "x the median" in check_against_class(runs, [1.0, 1.1, 0.9])
    assert check_against_class(runs, [9.0, 12.0]) is None
