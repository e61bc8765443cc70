"""A coordinator with a dashboard over its store, a registered worker and a half-done campaign."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from farm_reports import report_for

from metainf.client import channel
from metainf.coordinator.dashboard import DashboardServer, start_dashboard
from metainf.coordinator.farm_metrics import FarmMetrics
from metainf.v1 import farm_pb2, farm_pb2_grpc

WORKER_NAME = "gpu-box-<7>"
"""A worker name with HTML in it: it must appear escaped."""

GRID = {
    "name": "dash", "models": ["llama-tiny"], "methods": ["none", "pc"],
    "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4, "batch_size": 2,
                   "max_output_tokens": 2}],
    "repetitions": 1,
}


@dataclass
class Farm:
    """What the dashboard tests look at."""

    dashboard: DashboardServer
    metrics: FarmMetrics
    campaign_id: str
    worker_id: str

    def url(self, path: str = "/") -> str:
        """Full URL of a dashboard path."""
        return f"http://127.0.0.1:{self.dashboard.port}{path}"


def start_farm(coordinator, tokens: dict | None = None, token_file: str | None = None) -> Farm:
    """Register a worker, submit a 2-cell campaign and finish one cell, over real gRPC."""
    metrics = FarmMetrics(coordinator.store)
    dashboard = start_dashboard(coordinator.store, "127.0.0.1", 0, tokens, metrics)
    stub = farm_pb2_grpc.CoordinatorStub(channel(f"127.0.0.1:{coordinator.port}", token_file))
    campaign_id = stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(
        grid_json=json.dumps(GRID)), timeout=30).campaign_id
    worker_id = stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name=WORKER_NAME, hardware=farm_pb2.HardwareProfile(
            kind="cpu", cpu_model="Test CPU", cpu_cores=1, ram_gb=8, isa_flags=["avx2"]),
        price_per_hour=0.1, engines=["vllm"]), timeout=10).worker_id
    cell = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker_id), timeout=10).cell
    assert stub.ReportResult(report_for(worker_id, cell), timeout=10).stored == 1
    return Farm(dashboard, metrics, campaign_id, worker_id)


def fetch(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    """GET a URL: (status, body, headers), HTTP errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)
