"""Building consistent (or deliberately lying) reports for a leased cell in tests."""

from __future__ import annotations

from metainf.coordinator.plausibility import workload_totals
from metainf.v1 import farm_pb2


def runs_for(cell: farm_pb2.CellSpec, runtime: float = 1.0) -> list[farm_pb2.RunResult]:
    """Done runs whose throughputs match the cell's workload over `runtime` seconds."""
    n_requests, n_tokens = workload_totals(cell.workload_json)
    return [farm_pb2.RunResult(
        repetition=i, status="done", runtime_s=runtime, request_throughput=n_requests / runtime,
        throughput_tok_s=n_tokens / runtime, ttft_p50_s=0.1 * runtime, ttft_p99_s=0.2 * runtime,
        itl_p50_s=0.01 * runtime, itl_p99_s=0.02 * runtime, peak_mem_gb=1.0)
        for i in range(cell.repetitions)]


def report_for(worker_id: str, cell: farm_pb2.CellSpec, runtime: float = 1.0,
               status: str = "done") -> farm_pb2.ReportResultRequest:
    """A complete report of a leased cell."""
    return farm_pb2.ReportResultRequest(
        worker_id=worker_id, campaign_id=cell.campaign_id, cell_id=cell.cell_id,
        epoch=cell.epoch, status=status, runs=runs_for(cell, runtime) if status == "done" else [],
        engine="vllm", engine_version="test", weights="dummy", engine_config_json="{}")
