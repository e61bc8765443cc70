"""Drift: results far from the serving model's predictions flag their hardware class, and
only it; without a model there is no drift, and campaign status says so."""

from __future__ import annotations

import json
import urllib.request

import grpc
import pytest
from farm_models import CPU_PROFILE, GPU_PROFILE, farm_frame, farm_workloads, label_of, train_farm

from metainf.cli.campaign import status_dict
from metainf.coordinator.plausibility import workload_totals
from metainf.coordinator.retrain import RetrainConfig
from metainf.coordinator.server import ServerConfig, create_server
from metainf.v1 import farm_pb2, farm_pb2_grpc

pytestmark = pytest.mark.integration

FACTORS = {"none": 1.0, "cb": 0.8, "pc": 0.6, "cb+pc": 0.5}
GRID = {"name": "drift", "models": ["llama-tiny"], "methods": list(FACTORS),
        "workloads": [{**{k: w["spec"][k] for k in ("dataset", "num_prompts",
                                                     "max_output_tokens", "seed", "options")},
                       "batch_size": [4, 8]} for w in farm_workloads().values()],
        "repetitions": 1}
CELLS_PER_CLASS = 4 * 2 * 2
OFF_BY = {"cpu": 1.0, "gpu": 5.0}
"""Measured = predicted x this: the CPU class as predicted, the GPU class five times slower."""
PROFILES = {"cpu": CPU_PROFILE, "gpu": GPU_PROFILE}
NO_RETRAIN = RetrainConfig(on_campaign_done=False)
"""The model that made the predictions keeps serving (no version trained meanwhile)."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    profiles = {label_of(CPU_PROFILE): CPU_PROFILE, label_of(GPU_PROFILE): GPU_PROFILE}
    train_farm(*farm_frame(profiles, FACTORS), d)
    return d


def _runs(cell: farm_pb2.CellSpec, runtime: float) -> list[farm_pb2.RunResult]:
    n_requests, n_tokens = workload_totals(cell.workload_json)
    return [farm_pb2.RunResult(
        repetition=i, status="done", runtime_s=runtime,
        request_throughput=n_requests / runtime, throughput_tok_s=n_tokens / runtime,
        ttft_p50_s=0.01, ttft_p99_s=0.02, itl_p50_s=0.001, itl_p99_s=0.002, peak_mem_gb=1.0)
        for i in range(cell.repetitions)]


def _run_classes(coord, stub, workers: dict[str, float]) -> dict[str, int]:
    """Register a worker per profile kind, then lease their cells in turn and report each
    cell's predicted runtime x the worker's factor; cells run per kind."""
    ids = {kind: stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name=kind, hardware=farm_pb2.HardwareProfile(**PROFILES[kind])), timeout=10).worker_id
        for kind in workers}
    done = dict.fromkeys(workers, 0)
    idle: set[str] = set()
    while len(idle) < len(workers):
        for kind, off_by in workers.items():
            lease = stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=ids[kind]), timeout=10)
            if not lease.HasField("cell"):
                idle.add(kind)
                continue
            cell = lease.cell
            coord.drift.flush()  # the prediction made at lease time is in the store
            rows = coord.store.query("SELECT predicted FROM predictions WHERE cell_id=?",
                                     (cell.cell_id,))
            runtime = rows[0]["predicted"] * off_by if rows else 1.0
            resp = stub.ReportResult(farm_pb2.ReportResultRequest(
                worker_id=ids[kind], campaign_id=cell.campaign_id, cell_id=cell.cell_id,
                epoch=cell.epoch, status="done", runs=_runs(cell, runtime),
                engine="vllm", engine_version="test", weights="dummy"), timeout=10)
            assert resp.stored == cell.repetitions and not resp.flagged
            done[kind] += 1
    return done


def test_results_far_from_predictions_flag_their_class_and_only_it(tmp_path, model_dir):
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0, model_dir=model_dir,
                                       http_port=0, retrain=NO_RETRAIN))
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{coord.port}")
        stub = farm_pb2_grpc.CoordinatorStub(ch)
        campaign_id = stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(
            grid_json=json.dumps(GRID)), timeout=60).campaign_id
        assert _run_classes(coord, stub, OFF_BY) == dict.fromkeys(OFF_BY, CELLS_PER_CLASS)
        coord.drift.flush()

        status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(
            campaign_id=campaign_id), timeout=10)
        assert status.state == "done" and status.drift_note == ""
        drift = {d.hardware_label: d for d in status.drift}
        cpu, gpu = drift[label_of(CPU_PROFILE)], drift[label_of(GPU_PROFILE)]
        version = (model_dir / "LATEST").read_text(encoding="utf-8").strip()
        for d in (cpu, gpu):
            assert d.results == CELLS_PER_CLASS and list(d.model_versions) == [version]
            assert 0 < d.held_out_mdape < 0.7  # read from the model's calibrated intervals
        assert cpu.mdape == pytest.approx(0.0, abs=1e-6) and not cpu.flagged
        assert gpu.mdape == pytest.approx(0.8) and gpu.flagged  # |5p - p| / 5p
        as_json = status_dict(status)
        assert [d["flagged"] for d in sorted(as_json["drift"], key=lambda d: d["hardware"])] \
            == [d.flagged for d in sorted(status.drift, key=lambda d: d.hardware_label)]

        base = f"http://127.0.0.1:{coord.dashboard.port}"
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        assert f'metainf_drift_flagged{{hardware_class="{gpu.hardware_label}"}} 1.0' in metrics
        assert f'metainf_drift_flagged{{hardware_class="{cpu.hardware_label}"}} 0.0' in metrics
        assert "metainf_drift_flagged_classes 1.0" in metrics
        assert f'metainf_drift_mdape{{hardware_class="{gpu.hardware_label}"}} 0.8' in metrics
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        section = page[page.index('id="drift"'):]
        assert section.count("flagged: retrain") == 1
        assert section.index(gpu.hardware_label) < section.index("flagged: retrain") \
            < section.index(cpu.hardware_label)
        ch.close()
    finally:
        coord.stop(grace=0)


def test_without_a_model_there_is_no_drift_and_status_says_so(tmp_path):
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0, http_port=0))
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{coord.port}")
        stub = farm_pb2_grpc.CoordinatorStub(ch)
        campaign_id = stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(
            grid_json=json.dumps(GRID)), timeout=60).campaign_id
        assert _run_classes(coord, stub, {"cpu": 1.0}) == {"cpu": CELLS_PER_CLASS}
        coord.drift.flush()
        status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(
            campaign_id=campaign_id), timeout=10)
        assert status.state == "done" and not status.drift
        assert status.drift_note.startswith("no model loaded: no drift")
        assert coord.store.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 0
        page = urllib.request.urlopen(f"http://127.0.0.1:{coord.dashboard.port}/",
                                      timeout=10).read().decode()
        assert "no model loaded: no drift" in page
        ch.close()
    finally:
        coord.stop(grace=0)
