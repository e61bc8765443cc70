"""Bad input, RPC by RPC: the status code, a message naming the field, and nothing stored.

One table over both services: `pytest -v tests/test_bad_input.py` prints each row as
`RPC:bad field->expected answer`. Coordinator rows run against a fresh real server (port 0,
SQLite) holding one campaign and one worker with a leased cell; Select rows against one
server per module that serves a small model trained on a synthetic farm table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

TESTS = Path(__file__).resolve().parent
for _helpers in (TESTS / "coordinator", TESTS / "selector"):  # farm_reports, synthetic_tables
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

from farm_reports import report_for  # noqa: E402
from synthetic_tables import farm_frame_and_meta, shared_embedder  # noqa: E402

from metainf.client import MAX_MESSAGE_BYTES, channel  # noqa: E402
from metainf.coordinator.server import ServerConfig, create_server  # noqa: E402
from metainf.selector.table import FARM_MAPPING, PerfTable  # noqa: E402
from metainf.selector.training import train  # noqa: E402
from metainf.v1 import farm_pb2, farm_pb2_grpc  # noqa: E402

DEADLINE_S = 30.0
"""Deadline of every call in this module."""

NAN, INF = float("nan"), float("inf")
OVER_LIMIT = MAX_MESSAGE_BYTES + 1
"""Bytes of a payload that puts a request over the server's message limit."""

LONG_TEXT = "x" * 201
"""One character more than a name or hardware text may have."""

GRID = {"name": "bad-input", "models": ["llama-tiny"], "methods": ["none"],
        "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4, "batch_size": 2,
                       "max_output_tokens": 2}],
        "repetitions": 2}
PROFILE = {"kind": "cpu", "cpu_model": "Test CPU", "cpu_cores": 1, "ram_gb": 8.0,
           "isa_flags": ["avx2"]}
SELECT_WORKLOAD = {"dataset": "synthetic-shared-prefix", "num_prompts": 16,
                   "max_output_tokens": 16, "batch_size": 8}
SELECTOR_RPCS = ("Select", "ReloadModel", "Ping", "ListModels", "PromoteModel")
PLACEMENT_RPCS = ("Place",)


class Client:
    """Stubs of both services on the product's client channel, and a channel without a
    send limit for requests that must reach the server's own limit."""

    def __init__(self, address: str):
        self.channel = channel(address)
        self.unlimited = grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", -1)])
        self.coordinator = farm_pb2_grpc.CoordinatorStub(self.channel)
        self.selector = farm_pb2_grpc.SelectorStub(self.channel)
        self.placement = farm_pb2_grpc.PlacementStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.unlimited.close()


class Farm(Client):
    """A fresh coordinator holding one campaign and one worker with a leased cell."""

    def __init__(self, coordinator):
        super().__init__(f"127.0.0.1:{coordinator.port}")
        self.store = coordinator.store
        self.campaign_id = self.submit(GRID).campaign_id
        self.worker_id = self.register("w0").worker_id
        self.cell = self.lease(self.worker_id)

    def submit(self, grid: dict) -> farm_pb2.SubmitCampaignResponse:
        return self.coordinator.SubmitCampaign(
            farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(grid)), timeout=DEADLINE_S)

    def register(self, name: str) -> farm_pb2.RegisterWorkerResponse:
        return self.coordinator.RegisterWorker(farm_pb2.RegisterWorkerRequest(
            name=name, hardware=farm_pb2.HardwareProfile(**PROFILE), price_per_hour=0.1),
            timeout=DEADLINE_S)

    def lease(self, worker_id: str) -> farm_pb2.CellSpec:
        resp = self.coordinator.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=worker_id),
                                          timeout=DEADLINE_S)
        assert resp.HasField("cell")
        return resp.cell

    def snapshot(self) -> dict[str, Any]:
        """What the farm holds: workers, campaigns, cell counts and stored rows."""
        workers = self.coordinator.ListWorkers(farm_pb2.ListWorkersRequest(),
                                               timeout=DEADLINE_S).workers
        campaign_ids = [c["campaign_id"] for c in self.store.campaigns()]
        cells, rows = {}, {}
        for cid in campaign_ids:
            cells[cid] = dict(self.coordinator.GetCampaignStatus(
                farm_pb2.GetCampaignStatusRequest(campaign_id=cid), timeout=DEADLINE_S).cells)
            rows[cid] = sum(len(chunk.rows) for chunk in self.coordinator.ExportResults(
                farm_pb2.ExportResultsRequest(campaign_id=cid, all_replicas=True),
                timeout=DEADLINE_S))
        return {"workers": [(w.worker_id, w.name, w.hardware_class, w.current_cell)
                            for w in workers],
                "campaigns": campaign_ids, "cells": cells, "rows": rows}


# -- building bad requests ------------------------------------------------------------------

Build = Callable[[Any], Any]
"""Makes the request of a row from a Farm (or Client), doing any set-up it needs first."""


def _value(v: Any, farm: Farm) -> Any:
    return v(farm) if callable(v) else v


def register(hw: dict | None = None, **fields: Any) -> Build:
    """A RegisterWorkerRequest with `fields` and hardware profile fields `hw` replaced."""
    def build(farm):
        base = {"name": "w1", "price_per_hour": 0.1, "engines": ["vllm"],
                "hardware": farm_pb2.HardwareProfile(**{**PROFILE, **(hw or {})})}
        return farm_pb2.RegisterWorkerRequest(**{**base, **fields})
    return build


def report(edit: Callable[[farm_pb2.ReportResultRequest], Any] | None = None,
           run0: dict | None = None, **fields: Any) -> Build:
    """A consistent report of the leased cell with `fields` replaced (a callable value is
    computed from the farm), runs[0] fields replaced by `run0`, then `edit` applied."""
    def build(farm):
        req = report_for(farm.worker_id, farm.cell)
        for name, value in fields.items():
            setattr(req, name, _value(value, farm))
        for name, value in (run0 or {}).items():
            setattr(req.runs[0], name, value)
        if edit:
            edit(req)
        return req
    return build


def stale_epoch(farm: Farm) -> farm_pb2.ReportResultRequest:
    """A report at the first epoch after the cell failed and was leased again."""
    first = farm.cell
    farm.coordinator.ReportResult(report_for(farm.worker_id, first, status="failed"),
                                  timeout=DEADLINE_S)
    again = farm.lease(farm.worker_id)
    assert (again.cell_id, again.epoch) == (first.cell_id, first.epoch + 1)
    return report_for(farm.worker_id, first)


def other_worker(farm: Farm) -> farm_pb2.ReportResultRequest:
    """A report by a second worker for the cell the first one holds."""
    return report_for(farm.register("w1").worker_id, farm.cell)


def slower_than_claimed(req: farm_pb2.ReportResultRequest) -> None:
    """Runtimes 10x longer than the throughputs allow: numbers that cannot all be true."""
    for run in req.runs:
        run.runtime_s *= 10


def submit(grid_json: str) -> Build:
    return lambda farm: farm_pb2.SubmitCampaignRequest(grid_json=grid_json)


def grid(**changes: Any) -> Build:
    return submit(json.dumps({**GRID, **changes}))


def workload(**changes: Any) -> Build:
    return grid(workloads=[{**GRID["workloads"][0], **changes}])


def select(**fields: Any) -> Build:
    """A good SelectRequest for the trained model with `fields` replaced."""
    base = {"model": "llama-tiny", "workload_json": json.dumps(SELECT_WORKLOAD),
            "hardware": [farm_pb2.HardwareOption(name="cpu-amd-epyc-2c")]}
    return lambda farm: farm_pb2.SelectRequest(**{**base, **fields})


def select_workload(**changes: Any) -> Build:
    return select(workload_json=json.dumps({**SELECT_WORKLOAD, **changes}))


def price(value: float) -> list[farm_pb2.HardwareOption]:
    return [farm_pb2.HardwareOption(name="cpu-amd-epyc-2c", price_per_hour=value)]


def count(value: int) -> list[farm_pb2.HardwareOption]:
    return [farm_pb2.HardwareOption(name="cpu-amd-epyc-2c", count=value)]


def block_timing(**fields: Any) -> Build:
    """A done ReportBlockTimingRequest of worker w0 with `fields` replaced."""
    def build(farm):
        base = {"worker_id": farm.worker_id, "timing_id": "t-none", "status": "done",
                "tau_s": 0.001, "tau_prefill_s": 0.01, "device": "cpu", "dtype": "bfloat16"}
        return farm_pb2.ReportBlockTimingRequest(**{**base, **fields})
    return build


def timing_of_another_worker(farm) -> farm_pb2.ReportBlockTimingRequest:
    """A report by a second worker of a block timing leased to w0."""
    class_id = farm.store.worker(farm.worker_id)["class_id"]
    assert farm.store.request_block_timing(class_id, "llama-tiny")
    timing = farm.coordinator.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=farm.worker_id),
                                        timeout=DEADLINE_S).block_timing
    return block_timing(worker_id=farm.register("w1").worker_id,
                        timing_id=timing.timing_id)(farm)


def place(**fields: Any) -> Build:
    """A good PlaceRequest (llama-tiny on one inline server next to the coordinator) with
    `fields` replaced; `servers`, `rtt` and `load` may be given as dicts."""
    base: dict[str, Any] = {
        "model": farm_pb2.PlaceModel(catalog="llama-tiny"),
        "servers": [{"name": "s", "memory_gb": 1.0, "tau_ms": 1.0}],
        "rtt": {"regions": [farm_pb2.RegionRTT(a="coordinator", b="coordinator", ms=5.0)]},
        "load": {"sessions": 1, "l_in": 8, "l_out": 8}, "petals_join_orders": 1}
    base.update(fields)

    def build(farm):
        out = dict(base)
        for key, message in (("rtt", farm_pb2.PlaceRTT), ("load", farm_pb2.PlaceLoad)):
            if isinstance(out.get(key), dict):
                out[key] = message(**out[key])
        out["servers"] = [farm_pb2.PlaceServer(**s) if isinstance(s, dict) else s
                          for s in out.get("servers", [])]
        return farm_pb2.PlaceRequest(**{k: v for k, v in out.items() if v is not None})
    return build


def oversized(message: type, field_name: str) -> Build:
    """A request whose one string field alone is over the server's message limit."""
    return lambda farm: message(**{field_name: "x" * OVER_LIMIT})


def oversized_unknown_field(farm) -> bytes:
    """An encoded message holding only an unknown field (number 15) over the limit."""
    size, tag = OVER_LIMIT, bytearray(b"\x7a")  # field 15, length-delimited
    while size > 0x7F:
        tag.append(size & 0x7F | 0x80)
        size >>= 7
    tag.append(size)
    return bytes(tag) + b"x" * OVER_LIMIT


# -- the table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One bad input: the RPC, what is wrong, the expected answer and the field named."""

    rpc: str
    bad: str
    expect: str
    """A status code name, or "OK(...)" for an answer given in the response."""
    needle: str
    """Text the error message must contain: the field (or the value) at fault."""
    request: Build = field(compare=False)
    answer: Callable[[Any], bool] | None = field(default=None, compare=False)
    """For OK rows: what the response must say."""
    trained: bool = False
    """Served by the module's trained selector instead of a fresh farm."""
    raw: bool = False
    """Sent past the client's size limit as encoded bytes."""
    may_change: frozenset[str] = frozenset()
    """Parts of the farm's snapshot the call may change (never the stored rows)."""

    @property
    def id(self) -> str:
        return f"{self.rpc}:{self.bad}->{self.expect}"


def row(rpc: str, bad: str, expect: str, needle: str, request: Build, **kw: Any):
    r = Row(rpc, bad, expect, needle, request, **kw)
    return pytest.param(r, id=r.id)


INVALID, NOT_FOUND = "INVALID_ARGUMENT", "NOT_FOUND"
TOO_BIG = "RESOURCE_EXHAUSTED"
BIG = "64MiB+1"

ROWS = [
    # RegisterWorker: nothing is registered.
    row("RegisterWorker", "hardware=missing", INVALID, "hardware.kind", register(hardware=None)),
    row("RegisterWorker", "hardware.kind=tpu", INVALID, "hardware.kind",
        register(hw={"kind": "tpu"})),
    row("RegisterWorker", "hardware.cpu_cores=-1", INVALID, "hardware.cpu_cores",
        register(hw={"cpu_cores": -1})),
    row("RegisterWorker", "hardware.ram_gb=NaN", INVALID, "hardware.ram_gb",
        register(hw={"ram_gb": NAN})),
    row("RegisterWorker", "hardware.accelerator_memory_gb=inf", INVALID,
        "hardware.accelerator_memory_gb",
        register(hw={"kind": "gpu", "accelerator_memory_gb": INF})),
    row("RegisterWorker", "hardware.accelerator_count=-2", INVALID, "hardware.accelerator_count",
        register(hw={"kind": "gpu", "accelerator_count": -2})),
    row("RegisterWorker", "hardware.memory_bandwidth_gbs=NaN", INVALID,
        "hardware.memory_bandwidth_gbs", register(hw={"memory_bandwidth_gbs": NAN})),
    row("RegisterWorker", "hardware.cpu_clock_ghz=-1", INVALID, "hardware.cpu_clock_ghz",
        register(hw={"cpu_clock_ghz": -1.0})),
    row("RegisterWorker", "hardware.cpu_model=201chars", INVALID, "hardware.cpu_model",
        register(hw={"cpu_model": LONG_TEXT})),
    row("RegisterWorker", "price_per_hour=-1", INVALID, "price_per_hour",
        register(price_per_hour=-1.0)),
    row("RegisterWorker", "price_per_hour=NaN", INVALID, "price_per_hour",
        register(price_per_hour=NAN)),
    row("RegisterWorker", "price_per_hour=inf", INVALID, "price_per_hour",
        register(price_per_hour=INF)),
    row("RegisterWorker", "name=201chars", INVALID, "name", register(name=LONG_TEXT)),
    row("RegisterWorker", "engine_version=201chars", INVALID, "engine_version",
        register(engine_version=LONG_TEXT)),
    # Heartbeat answers in its response: register again, or abandon the cell.
    row("Heartbeat", "worker_id=missing", "OK(known=false)", "",
        lambda farm: farm_pb2.HeartbeatRequest(), answer=lambda r: not r.known),
    row("Heartbeat", "worker_id=unknown", "OK(known=false)", "",
        lambda farm: farm_pb2.HeartbeatRequest(worker_id="w-ghost"), answer=lambda r: not r.known),
    row("Heartbeat", "cell_id=unknown", "OK(abort_cell)", "",
        lambda farm: farm_pb2.HeartbeatRequest(worker_id=farm.worker_id, cell_id="nope", epoch=1),
        answer=lambda r: r.known and r.abort_cell),
    row("Heartbeat", "epoch=other-than-the-lease", "OK(abort_cell)", "",
        lambda farm: farm_pb2.HeartbeatRequest(
            worker_id=farm.worker_id, cell_id=farm.cell.cell_id, epoch=farm.cell.epoch + 1),
        answer=lambda r: r.known and r.abort_cell),
    # LeaseCell
    row("LeaseCell", "worker_id=missing", INVALID, "worker_id",
        lambda farm: farm_pb2.LeaseCellRequest()),
    row("LeaseCell", "worker_id=unknown", NOT_FOUND, "worker_id",
        lambda farm: farm_pb2.LeaseCellRequest(worker_id="w-ghost")),
    # ReportResult: ids and lease.
    row("ReportResult", "worker_id=missing", INVALID, "worker_id", report(worker_id="")),
    row("ReportResult", "worker_id=unknown", NOT_FOUND, "worker_id",
        report(worker_id="w-ghost")),
    row("ReportResult", "campaign_id=missing", INVALID, "campaign_id", report(campaign_id="")),
    row("ReportResult", "campaign_id=of-another-campaign", INVALID, "campaign_id",
        report(campaign_id=lambda farm: farm.submit(GRID).campaign_id)),
    row("ReportResult", "cell_id=missing", INVALID, "cell_id", report(cell_id="")),
    row("ReportResult", "cell_id=unknown", NOT_FOUND, "cell_id", report(cell_id="nope")),
    row("ReportResult", "epoch=missing", INVALID, "epoch", report(epoch=0)),
    row("ReportResult", "epoch=-1", INVALID, "epoch", report(epoch=-1)),
    row("ReportResult", "epoch=stale", "FAILED_PRECONDITION", "epoch", stale_epoch),
    row("ReportResult", "cell=held-by-another-worker", "PERMISSION_DENIED",
        "not leased to worker", other_worker),
    row("ReportResult", "epoch=ahead-of-the-lease", "PERMISSION_DENIED", "not leased to worker",
        report(epoch=99)),
    # ReportResult: status and runs.
    row("ReportResult", "status=missing", INVALID, "status", report(status="")),
    row("ReportResult", "status=great", INVALID, "status", report(status="great")),
    row("ReportResult", "runs=missing-for-done", INVALID, "runs",
        report(edit=lambda r: r.ClearField("runs"))),
    row("ReportResult", "runs=repetition-missing", INVALID, "runs",
        report(edit=lambda r: r.runs.pop())),
    row("ReportResult", "runs=repetition-twice", INVALID, "runs",
        report(run0={"repetition": 1})),
    row("ReportResult", "runs[0].status=fine", INVALID, "runs[0].status",
        report(run0={"status": "fine"})),
    row("ReportResult", "runs[0].runtime_s=NaN", INVALID, "runs[0].runtime_s",
        report(run0={"runtime_s": NAN})),
    row("ReportResult", "runs[0].runtime_s=inf", INVALID, "runs[0].runtime_s",
        report(run0={"runtime_s": INF})),
    row("ReportResult", "runs[0].runtime_s=0-for-done", INVALID, "runs[0].runtime_s",
        report(run0={"runtime_s": 0.0})),
    row("ReportResult", "runs[0].request_throughput=-1", INVALID, "runs[0].request_throughput",
        report(run0={"request_throughput": -1.0})),
    row("ReportResult", "runs[0].throughput_tok_s=inf", INVALID, "runs[0].throughput_tok_s",
        report(run0={"throughput_tok_s": INF})),
    row("ReportResult", "runs[0].ttft_p99_s=NaN", INVALID, "runs[0].ttft_p99_s",
        report(run0={"ttft_p99_s": NAN})),
    row("ReportResult", "runs[0].peak_mem_gb=-1", INVALID, "runs[0].peak_mem_gb",
        report(run0={"peak_mem_gb": -1.0})),
    row("ReportResult", "runs[0].energy_j=-1", INVALID, "runs[0].energy_j",
        report(run0={"energy_j": -1.0})),
    row("ReportResult", "runs=absurd(throughput-x-runtime-off)", "OK(flagged)", "",
        report(edit=slower_than_claimed),
        answer=lambda r: r.stored == 0 and "request_throughput" in r.flagged,
        may_change=frozenset({"workers", "cells"})),
    # ReportResult: engine fields.
    row("ReportResult", "engine_start_s=NaN", INVALID, "engine_start_s",
        report(engine_start_s=NAN)),
    row("ReportResult", "engine_start_s=-5", INVALID, "engine_start_s",
        report(engine_start_s=-5.0)),
    row("ReportResult", "engine_config_json=not-JSON", INVALID, "engine_config_json",
        report(engine_config_json="{oops")),
    row("ReportResult", "engine_config_json=list", INVALID, "engine_config_json",
        report(engine_config_json="[1]")),
    row("ReportResult", f"error={BIG}", TOO_BIG, "larger than max",
        report(error=lambda farm: "x" * OVER_LIMIT), raw=True),
    # SubmitCampaign: no campaign is created.
    row("SubmitCampaign", "grid_json=missing", INVALID, "grid_json", submit("")),
    row("SubmitCampaign", "grid_json=not-JSON", INVALID, "grid_json", submit("{models: [")),
    row("SubmitCampaign", "grid_json=list", INVALID, "grid", submit("[1, 2]")),
    row("SubmitCampaign", "grid.modles=unknown-key", INVALID, "modles",
        grid(modles=["llama-tiny"])),
    row("SubmitCampaign", "grid.models=missing", INVALID, "models",
        submit(json.dumps({k: v for k, v in GRID.items() if k != "models"}))),
    row("SubmitCampaign", "grid.models=unknown", INVALID, "models", grid(models=["gpt-17"])),
    row("SubmitCampaign", "grid.methods=warp", INVALID, "methods", grid(methods=["warp"])),
    row("SubmitCampaign", "grid.repetitions=0", INVALID, "repetitions", grid(repetitions=0)),
    row("SubmitCampaign", "grid.timeout_s=NaN", INVALID, "timeout_s",
        submit(json.dumps({**GRID, "timeout_s": NAN}))),
    row("SubmitCampaign", "workloads[0].batch_size=-4", INVALID, "batch_size",
        workload(batch_size=-4)),
    row("SubmitCampaign", "workloads[0].batch_size=string", INVALID, "batch_size",
        workload(batch_size="two")),
    row("SubmitCampaign", "workloads[0].num_prompts=0", INVALID, "num_prompts",
        workload(num_prompts=0)),
    row("SubmitCampaign", "workloads[0].dataset=unknown", INVALID, "dataset",
        workload(dataset="no-such")),
    row("SubmitCampaign", f"grid_json={BIG}", TOO_BIG, "larger than max",
        oversized(farm_pb2.SubmitCampaignRequest, "grid_json"), raw=True),
    # GetCampaignStatus, ExportResults, ListWorkers
    row("GetCampaignStatus", "campaign_id=missing", INVALID, "campaign_id",
        lambda farm: farm_pb2.GetCampaignStatusRequest()),
    row("GetCampaignStatus", "campaign_id=unknown", NOT_FOUND, "campaign_id",
        lambda farm: farm_pb2.GetCampaignStatusRequest(campaign_id="c-nope")),
    row("ExportResults", "campaign_id=missing", INVALID, "campaign_id",
        lambda farm: farm_pb2.ExportResultsRequest()),
    row("ExportResults", "campaign_id=unknown", NOT_FOUND, "campaign_id",
        lambda farm: farm_pb2.ExportResultsRequest(campaign_id="c-nope")),
    row("ExportResults", f"campaign_id={BIG}", TOO_BIG, "larger than max",
        oversized(farm_pb2.ExportResultsRequest, "campaign_id"), raw=True),
    row("ListWorkers", f"unknown-field={BIG}", TOO_BIG, "larger than max",
        oversized_unknown_field, raw=True),
    # ReportBlockTiming: nothing is stored.
    row("ReportBlockTiming", "worker_id=missing", INVALID, "worker_id",
        block_timing(worker_id="")),
    row("ReportBlockTiming", "worker_id=unknown", NOT_FOUND, "worker_id",
        block_timing(worker_id="w-ghost")),
    row("ReportBlockTiming", "timing_id=missing", INVALID, "timing_id",
        block_timing(timing_id="")),
    row("ReportBlockTiming", "timing_id=unknown", NOT_FOUND, "timing_id",
        block_timing(timing_id="t-ghost")),
    row("ReportBlockTiming", "status=great", INVALID, "status", block_timing(status="great")),
    row("ReportBlockTiming", "tau_s=NaN", INVALID, "tau_s", block_timing(tau_s=NAN)),
    row("ReportBlockTiming", "tau_s=-1", INVALID, "tau_s", block_timing(tau_s=-1.0)),
    row("ReportBlockTiming", "tau_prefill_s=0-for-done", INVALID, "tau_prefill_s",
        block_timing(tau_prefill_s=0.0)),
    row("ReportBlockTiming", "dtype=201chars", INVALID, "dtype", block_timing(dtype=LONG_TEXT)),
    row("ReportBlockTiming", "timing=leased-to-another-worker", "PERMISSION_DENIED",
        "not leased to worker", timing_of_another_worker, may_change=frozenset({"workers"})),
    # Heartbeat: a reported RTT must be a time.
    row("Heartbeat", "rtt_s=NaN", INVALID, "rtt_s",
        lambda farm: farm_pb2.HeartbeatRequest(worker_id=farm.worker_id, rtt_s=NAN)),
    row("Heartbeat", "rtt_s=-1", INVALID, "rtt_s",
        lambda farm: farm_pb2.HeartbeatRequest(worker_id=farm.worker_id, rtt_s=-1.0)),
    # Place: nothing is stored; every error names the request field.
    row("Place", "model.catalog=missing", INVALID, "model.catalog",
        place(model=farm_pb2.PlaceModel())),
    row("Place", "model.catalog=unknown", INVALID, "model.catalog: unknown model 'gpt-17'",
        place(model=farm_pb2.PlaceModel(catalog="gpt-17"))),
    row("Place", "model=does-not-fit-the-fleet's-memory", INVALID, "servers.memory_gb",
        place(model=farm_pb2.PlaceModel(catalog="bloom-176b"),
              servers=[{"name": "mig", "count": 2, "memory_gb": 9.5, "tau_ms": 15.0}])),
    row("Place", "rtt.client_server_ms=wrong-shape", INVALID,
        "rtt.client_server_ms: expected 1 rows × 2 columns",
        place(servers=[{"name": "s", "count": 2, "memory_gb": 1.0, "tau_ms": 1.0}],
              rtt={"client_server_ms": [farm_pb2.RTTRow(ms=[5.0])]})),
    row("Place", "load.arrival_rate=-0.1", INVALID, "load.arrival_rate",
        place(load={"sessions": 1, "l_in": 8, "l_out": 8, "arrival_rate": -0.1})),
    row("Place", "clients[0].arrival_rate=-1", INVALID, "clients.0.arrival_rate",
        place(clients=[farm_pb2.PlaceClient(name="c", arrival_rate=-1.0)])),
    row("Place", "load=missing", INVALID, "load.sessions", place(load=None)),
    row("Place", "load.l_out=-8", INVALID, "load.l_out",
        place(load={"sessions": 1, "l_in": 8, "l_out": -8})),
    row("Place", "servers[0].memory_gb=-1", INVALID, "servers.0.memory_gb",
        place(servers=[{"name": "s", "memory_gb": -1.0, "tau_ms": 1.0}])),
    row("Place", "servers[0].tau=nothing-to-estimate-from", INVALID, "servers.0.tau_ms",
        place(servers=[{"name": "s", "memory_gb": 1.0}])),
    row("Place", "algorithm=fastest", INVALID, "algorithm: unknown 'fastest'",
        place(algorithm="fastest")),
    row("Place", "milp_time_limit_s=500", INVALID, "milp_time_limit_s",
        place(milp_time_limit_s=500.0)),
    row("Place", "workers[0]=unknown", INVALID, "workers.0: unknown worker 'w-ghost'",
        place(servers=[], workers=["w-ghost"])),
    row("Place", "workers=all(w0-has-no-bandwidth-to-estimate-tau)", INVALID, "workers.w0",
        place(servers=[])),
    row("Place", f"algorithm={BIG}", TOO_BIG, "larger than max",
        oversized(farm_pb2.PlaceRequest, "algorithm"), raw=True),
    # Selector without a trained model.
    row("Select", "model-dir=no-trained-model", "FAILED_PRECONDITION", "metainf train",
        select()),
    row("ReloadModel", "model-dir=no-trained-model", "FAILED_PRECONDITION", "metainf train",
        lambda farm: farm_pb2.ReloadModelRequest()),
    # Model versions: a malformed name, a version the model directory does not hold.
    row("PromoteModel", "version=../LATEST", INVALID, "version:",
        lambda farm: farm_pb2.PromoteModelRequest(version="../LATEST")),
    row("PromoteModel", "version=empty", INVALID, "version: required",
        lambda farm: farm_pb2.PromoteModelRequest()),
    row("PromoteModel", "version=not-kept", NOT_FOUND, "version: no model 0123456789ab",
        lambda farm: farm_pb2.PromoteModelRequest(version="0123456789ab")),
    # ListModels has no fields: with nothing trained it lists nothing.
    row("ListModels", "model-dir=no-trained-model", "OK(empty)", "",
        lambda farm: farm_pb2.ListModelsRequest(),
        answer=lambda r: not r.versions and r.serving_version == ""),
    # Ping has no fields: only a message over the size limit is refused.
    row("Ping", f"unknown-field={BIG}", TOO_BIG, "larger than max", oversized_unknown_field,
        raw=True),
]

TRAINED_ROWS = [
    ("budget=-1", "budget", select(budget=-1.0)),
    ("budget=NaN", "budget", select(budget=NAN)),
    ("budget=inf", "budget", select(budget=INF)),
    ("model=missing", "model", select(model="")),
    ("methods=warp-drive", "methods", select(methods=["warp-drive"])),
    ("methods=empty-name", "methods", select(methods=[""])),
    ("objective=speed", "objective", select(objective="speed")),
    ("risk=yolo", "risk", select(risk="yolo")),
    ("risk=Upper", "unknown risk 'Upper'", select(risk="Upper")),
    ("workload_json=missing", "workload", select(workload_json="")),
    ("workload_json=not-JSON", "workload", select(workload_json="{oops")),
    ("workload_json=list", "workload", select(workload_json="[1]")),
    ("workload.batch_size=-8", "batch_size", select_workload(batch_size=-8)),
    ("workload.batch_size=NaN", "batch_size", select_workload(batch_size=NAN)),
    ("workload.key=unknown", "unknown key", select_workload(colour="blue")),
    ("workload.label=unknown", "unknown workload label",
     select(workload_json=json.dumps({"workload": "nope", "batch_size": 8}))),
    ("hardware=missing", "hardware", select(hardware=[])),
    ("hardware[0]=no-name-no-text", "hardware", select(hardware=[farm_pb2.HardwareOption()])),
    ("hardware[0].price_per_hour=-1", "price_per_hour", select(hardware=price(-1.0))),
    ("hardware[0].price_per_hour=NaN", "price_per_hour", select(hardware=price(NAN))),
    ("all_farm_hardware=none-registered", "all_farm_hardware",
     select(hardware=[], all_farm_hardware=True)),
    ("hardware[0].count=0", "count must be between 1 and 64", select(hardware=count(0))),
    ("hardware[0].count=-1", "count must be between 1 and 64", select(hardware=count(-1))),
    ("hardware[0].count=65", "count must be between 1 and 64", select(hardware=count(65))),
    ("hardware[0].count=2-but-text-says-4x", "count 2 disagrees",
     select(hardware=[farm_pb2.HardwareOption(text="4x NVIDIA H100 80GB", count=2)])),
    # measure_if_unsure: the farm must be able to run the question.
    ("measure_if_unsure+model_text", "needs a model name",
     select(model="", model_text="a small llama", measure_if_unsure=True)),
    ("measure_if_unsure+workload=statistics", "not statistics",
     select(workload_json=json.dumps({"input_len_p50": 100, "batch_size": 8}),
            measure_if_unsure=True)),
    ("measure_if_unsure+batch_size=2.5", "integer batch_size",
     select(workload_json=json.dumps({**SELECT_WORKLOAD, "batch_size": 2.5}),
            measure_if_unsure=True)),
]
ROWS += [row("Select", bad, INVALID, needle, build, trained=True)
         for bad, needle, build in TRAINED_ROWS]
# A model too big for every option is an answer, not an error: nothing chosen, and why.
ROWS.append(row("Select", "model=too-big-for-every-option", "OK(feasible=false)", "",
                select(model="llama-3.1-70b"), trained=True,
                answer=lambda r: not r.feasible and r.method == "" and r.hardware == ""
                and "nothing fits in memory" in r.message
                and all("does not fit in memory" in c.reason for c in r.candidates)))
ROWS.append(row("Select", f"workload_json={BIG}", TOO_BIG, "larger than max",
                oversized(farm_pb2.SelectRequest, "workload_json"), trained=True, raw=True))


# -- fixtures and the test ------------------------------------------------------------------

@pytest.fixture
def farm(coordinator):
    """The conftest coordinator (no trained model) with a campaign and a leased cell."""
    f = Farm(coordinator)
    yield f
    f.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A coordinator whose Select serves a small model of a synthetic farm table."""
    root = tmp_path_factory.mktemp("bad-input")
    frame, meta = farm_frame_and_meta()
    train(PerfTable.from_frame(frame, FARM_MAPPING, meta), root / "models", style="basic",
          svd_k=4, embedder=shared_embedder(), n_estimators=20, search=False)
    coord = create_server(ServerConfig(db=root / "farm.db", port=0, model_dir=root / "models"))
    client = Client(f"127.0.0.1:{coord.port}")
    answer = client.selector.Select(select()(client), timeout=DEADLINE_S)
    assert answer.method and answer.model_version  # the good request is answered
    yield client
    client.close()
    coord.stop(grace=0)


def send(client: Client, r: Row, request: Any) -> Any:
    """Call the row's RPC (collecting a stream), with a deadline."""
    if r.raw:
        service = ("Selector" if r.rpc in SELECTOR_RPCS else
                   "Placement" if r.rpc in PLACEMENT_RPCS else "Coordinator")
        payload = request if isinstance(request, bytes) else request.SerializeToString()
        path = f"/metainf.v1.{service}/{r.rpc}"
        if r.rpc == "ExportResults":
            return list(client.unlimited.unary_stream(path)(payload, timeout=DEADLINE_S))
        return client.unlimited.unary_unary(path)(payload, timeout=DEADLINE_S)
    stub = (client.selector if r.rpc in SELECTOR_RPCS else
            client.placement if r.rpc in PLACEMENT_RPCS else client.coordinator)
    answer = getattr(stub, r.rpc)(request, timeout=DEADLINE_S)
    return list(answer) if r.rpc == "ExportResults" else answer


@pytest.mark.parametrize("r", ROWS)
def test_bad_input(r: Row, request):
    client = request.getfixturevalue("trained" if r.trained else "farm")
    req = r.request(client)
    before = client.snapshot() if isinstance(client, Farm) else None
    if r.answer is not None:
        assert r.answer(send(client, r, req))
    else:
        with pytest.raises(grpc.RpcError) as info:
            send(client, r, req)
        assert info.value.code().name == r.expect, info.value.details()
        assert r.needle in info.value.details()
    if before is not None:
        after = client.snapshot()
        for part, held in before.items():
            if part not in r.may_change:
                assert after[part] == held, f"{part} changed"
        assert after["rows"] == before["rows"]


def test_every_rpc_is_in_the_table():
    covered = {p.values[0].rpc for p in ROWS}
    services = farm_pb2.DESCRIPTOR.services_by_name
    assert covered == {m.name for s in services.values() for m in s.methods}
