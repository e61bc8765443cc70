"""The Coordinator gRPC service: registration, heartbeats, leases, reports, campaigns, export."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import grpc

from metainf.coordinator import campaigns
from metainf.coordinator.active import ActivePlanner
from metainf.coordinator.auth import current_identity
from metainf.coordinator.drift import DriftMonitor
from metainf.coordinator.farm_metrics import FarmMetrics
from metainf.coordinator.plausibility import check_against_class, check_runs
from metainf.coordinator.scheduler import SchedulerConfig, lost_after_s, next_lease
from metainf.coordinator.status import campaign_progress, worker_state
from metainf.coordinator.store import NotFound, NotHolder, StaleLease, Store
from metainf.grid import GridError
from metainf.hardware import hardware_class
from metainf.methods import method_from_dict, wire_fields
from metainf.p import FINAL_STATUSES, METRIC_COLUMNS
from metainf.v1 import farm_pb2, farm_pb2_grpc

log = logging.getLogger(__name__)

EXPORT_CHUNK_ROWS = 500
BLOCK_TIMING_TIMEOUT_S = 900.0
"""Deadline of a block-timing cell; past it the timing may be leased to another worker."""
MAX_NAME_LEN = 200
PROFILE_NUMBERS = ("accelerator_count", "accelerator_memory_gb", "power_limit_w", "cpu_cores",
                   "ram_gb", "cpu_clock_ghz", "memory_bandwidth_gbs")
PROFILE_TEXTS = ("accelerator", "compute_capability", "driver_version", "cpu_model")
PEER_RTT_MAX_AGE_S = 600.0
"""A worker-to-worker RTT older than this is measured again."""
PEERS_PER_HEARTBEAT = 4
"""Peers a worker is asked to time per heartbeat (each costs a few health checks)."""


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5"); "" if none."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in rest:
        return ""
    return rest.rsplit(":", 1)[0]


def echo_address(request, context: grpc.ServicerContext) -> str:
    """host:port of a registering worker's echo service ("" when it serves none)."""
    if not request.echo_port:
        return ""
    if not 0 < request.echo_port < 65536:
        _abort_invalid(context, f"echo_port: must be between 1 and 65535 "
                                f"(got {request.echo_port})")
    if len(request.echo_host) > MAX_NAME_LEN:
        _abort_invalid(context, f"echo_host: at most {MAX_NAME_LEN} characters")
    host = request.echo_host or peer_host(context.peer())
    return f"{host}:{request.echo_port}" if host else ""


def _abort_invalid(context: grpc.ServicerContext, message: str) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def _require(context: grpc.ServicerContext, request, *fields: str) -> None:
    """Refuse a request that leaves one of `fields` empty, naming it."""
    for field in fields:
        if not getattr(request, field):
            _abort_invalid(context, f"{field}: required")


def _not_a_quantity(field: str, value: float) -> str | None:
    """The problem with a number that must be finite and >= 0, named by field, or None."""
    if not math.isfinite(value) or value < 0:
        return f"{field}: must be a finite number >= 0, got {value}"
    return None


def _check_profile(profile: farm_pb2.HardwareProfile) -> str | None:
    """The first problem with a registering worker's hardware profile, or None."""
    for name in PROFILE_NUMBERS:
        if problem := _not_a_quantity(f"hardware.{name}", getattr(profile, name)):
            return problem
    for name in PROFILE_TEXTS:
        if len(getattr(profile, name)) > MAX_NAME_LEN:
            return f"hardware.{name}: at most {MAX_NAME_LEN} characters"
    return None


def profile_to_dict(profile: farm_pb2.HardwareProfile) -> dict[str, Any]:
    """A HardwareProfile message as a plain dict (every field, defaults included)."""
    return {
        "kind": profile.kind, "accelerator": profile.accelerator,
        "accelerator_count": profile.accelerator_count,
        "accelerator_memory_gb": profile.accelerator_memory_gb,
        "compute_capability": profile.compute_capability,
        "driver_version": profile.driver_version, "power_limit_w": profile.power_limit_w,
        "cpu_model": profile.cpu_model, "cpu_cores": profile.cpu_cores,
        "ram_gb": profile.ram_gb, "isa_flags": sorted(profile.isa_flags),
        "cpu_clock_ghz": profile.cpu_clock_ghz,
        "memory_bandwidth_gbs": profile.memory_bandwidth_gbs,
    }


def _check_run(run: farm_pb2.RunResult) -> str | None:
    """The first problem with a run's metrics, or None."""
    if run.status not in FINAL_STATUSES:
        return f"runs[{run.repetition}].status: must be one of {', '.join(FINAL_STATUSES)}"
    if run.status != "done":
        return None
    for name in METRIC_COLUMNS:
        if name == "energy_j" and not run.HasField("energy_j"):
            continue
        if problem := _not_a_quantity(f"runs[{run.repetition}].{name}", getattr(run, name)):
            return problem
    if run.runtime_s <= 0:
        return f"runs[{run.repetition}].runtime_s: must be > 0 for a done run"
    return None


def _run_dict(run: farm_pb2.RunResult) -> dict[str, Any]:
    out = {"repetition": run.repetition, "status": run.status, "error": run.error}
    if run.status == "done":
        for name in METRIC_COLUMNS:
            out[name] = getattr(run, name)
        out["energy_j"] = run.energy_j if run.HasField("energy_j") else None
    return out


class CoordinatorServicer(farm_pb2_grpc.CoordinatorServicer):
    """Implements metainf.v1.Coordinator over a Store."""

    def __init__(self, store: Store, config: SchedulerConfig | None = None,
                 metrics: FarmMetrics | None = None, drift: DriftMonitor | None = None,
                 on_result: Callable[[str], None] | None = None,
                 active: ActivePlanner | None = None):
        self.store = store
        self.config = config or SchedulerConfig()
        self.metrics = metrics or FarmMetrics()
        self.drift = drift
        self.on_result = on_result
        """Told the campaign of every stored outcome (the retrainer: has it finished?)."""
        self.active = active
        """Which cells an active campaign offers next (None: grid order, like a full one)."""

    # -- workers ----------------------------------------------------------------------

    def RegisterWorker(self, request, context):
        """Store the worker and its hardware class."""
        if not request.hardware.kind:
            _abort_invalid(context, "hardware.kind: required (gpu or cpu)")
        if request.hardware.kind not in ("gpu", "cpu"):
            _abort_invalid(context, f"hardware.kind: must be gpu or cpu, got "
                                    f"{request.hardware.kind!r}")
        if problem := _not_a_quantity("price_per_hour", request.price_per_hour):
            _abort_invalid(context, problem)
        for field in ("name", "engine_version"):
            if len(getattr(request, field)) > MAX_NAME_LEN:
                _abort_invalid(context, f"{field}: at most {MAX_NAME_LEN} characters")
        problem = _check_profile(request.hardware)
        if problem:
            _abort_invalid(context, problem)
        profile = profile_to_dict(request.hardware)
        class_id, label = hardware_class(profile)
        name = request.name or label
        worker_id = self.store.register_worker(name, class_id, label, profile,
                                               request.price_per_hour, request.engine_version,
                                               current_identity.get().operator,
                                               echo_address(request, context))
        log.info("worker %s registered as %s (%s)", name, worker_id, label)
        return farm_pb2.RegisterWorkerResponse(
            worker_id=worker_id, hardware_class=class_id, hardware_label=label,
            heartbeat_interval_s=self.config.heartbeat_interval_s)

    def _own_worker(self, worker_id: str, context: grpc.ServicerContext) -> dict[str, Any]:
        """The worker row, if the caller may act for it (its operator or an admin)."""
        try:
            worker = self.store.worker(worker_id)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        self._check_owner(worker, context)
        return worker

    def _check_owner(self, worker: dict[str, Any], context: grpc.ServicerContext) -> None:
        identity = current_identity.get()
        if identity.role == "worker" and worker["operator"] != identity.operator:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"worker {worker['worker_id']} belongs to another operator")

    def Heartbeat(self, request, context):
        """Renew the worker's liveness, its running cell's lease and its reported RTTs; name
        the peers it should time next."""
        if problem := _not_a_quantity("rtt_s", request.rtt_s):
            _abort_invalid(context, problem)
        for peer, rtt in request.peer_rtt_s.items():
            if problem := _not_a_quantity(f"peer_rtt_s[{peer}]", rtt):
                _abort_invalid(context, problem)
        try:
            worker = self.store.worker(request.worker_id)
        except NotFound:
            return farm_pb2.HeartbeatResponse(known=False)
        self._check_owner(worker, context)
        cell = self.store.heartbeat(request.worker_id, request.cell_id, request.epoch,
                                    self.config.lease_s, request.rtt_s)
        if request.peer_rtt_s:
            self.store.store_peer_rtts(request.worker_id, {
                peer: rtt for peer, rtt in request.peer_rtt_s.items()
                if peer != request.worker_id and rtt > 0})
        abort = False
        if request.cell_id:
            # Not its lease any more, or past the cell's hard deadline: tell it to stop.
            abort = cell is None or time.time() > cell["started_at"] + cell["timeout_s"]
        peers = self.store.peers_to_measure(
            request.worker_id, time.time() - lost_after_s(self.config), PEER_RTT_MAX_AGE_S,
            PEERS_PER_HEARTBEAT)
        return farm_pb2.HeartbeatResponse(
            known=True, abort_cell=abort,
            measure_peers=[farm_pb2.PeerEcho(worker_id=p["worker_id"], address=p["echo_address"])
                           for p in peers])

    def LeaseCell(self, request, context):
        """Hand the worker its next cell, preferring its warm engine."""
        _require(context, request, "worker_id")
        worker = self._own_worker(request.worker_id, context)
        if worker["quarantined"]:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"worker {request.worker_id} is quarantined after {worker['flags']} "
                          f"implausible results; an operator must investigate")
        self.store.touch_worker(request.worker_id, request.warm_engine_key)
        self.metrics.lease_expired(self.store.expire_leases(time.time()))
        timing = self.store.lease_block_timing(request.worker_id, worker["class_id"],
                                               BLOCK_TIMING_TIMEOUT_S)
        if timing is not None:
            log.info("leased block timing %s (%s) to %s", timing["timing_id"], timing["model"],
                     worker["name"])
            return farm_pb2.LeaseCellResponse(block_timing=farm_pb2.BlockTimingSpec(
                timing_id=timing["timing_id"], model=timing["model"], l_in=timing["l_in"],
                repeats=timing["repeats"], timeout_s=BLOCK_TIMING_TIMEOUT_S))
        lease = next_lease(self.store, worker, request.warm_engine_key, self.config,
                           self.active)
        if lease is None:
            return farm_pb2.LeaseCellResponse(retry_after_s=self.config.idle_retry_s)
        c = lease.cell
        method = method_from_dict(json.loads(c["method_json"]))
        spec = farm_pb2.CellSpec(
            campaign_id=c["campaign_id"], cell_id=c["cell_id"], epoch=lease.epoch,
            model=c["model"], **wire_fields(method), workload_json=c["workload_json"],
            batch_size=c["batch_size"], repetitions=c["repetitions"], replica=c["replica"],
            engine_key=c["engine_key"], timeout_s=c["timeout_s"])
        log.info("leased %s (%s %s b=%d) to %s epoch %d", c["cell_id"], c["model"],
                 c["method"], c["batch_size"], worker["name"], lease.epoch)
        if self.drift is not None:  # what the serving model expects, before it runs
            self.drift.cell_leased(c, worker["hardware_label"], json.loads(worker["profile_json"]))
        return farm_pb2.LeaseCellResponse(cell=spec)

    def ReportResult(self, request, context):
        """Store a cell's outcome; refuse bad metrics and stale leases."""
        _require(context, request, "worker_id", "campaign_id", "cell_id")
        if request.epoch < 1:
            _abort_invalid(context, f"epoch: must be the cell's lease epoch (>= 1), got "
                                    f"{request.epoch}")
        if request.status not in FINAL_STATUSES:
            _abort_invalid(context, f"status: must be one of {', '.join(FINAL_STATUSES)}")
        if request.status == "done" and not request.runs:
            _abort_invalid(context, "runs: a done cell needs at least one run")
        for run in request.runs:
            problem = _check_run(run)
            if problem:
                _abort_invalid(context, problem)
        if problem := _not_a_quantity("engine_start_s", request.engine_start_s):
            _abort_invalid(context, problem)
        if request.engine_config_json:
            try:
                engine_config = json.loads(request.engine_config_json)
            except ValueError:
                _abort_invalid(context, "engine_config_json: not valid JSON")
            if not isinstance(engine_config, dict):
                _abort_invalid(context, "engine_config_json: must be a JSON object")
        self._own_worker(request.worker_id, context)
        try:
            cell = self.store.cell(request.cell_id)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        if cell["campaign_id"] != request.campaign_id:
            _abort_invalid(context, f"campaign_id: cell {request.cell_id} belongs to "
                                    f"{cell['campaign_id']}")
        if request.status == "done":
            reps = sorted(r.repetition for r in request.runs)
            if reps != list(range(cell["repetitions"])):
                _abort_invalid(context, f"runs: expected repetitions 0..{cell['repetitions'] - 1},"
                                        f" got {reps}")
        runs = [_run_dict(r) for r in request.runs]
        if request.status == "done":
            reason = check_runs(cell, runs) or check_against_class(
                runs, self.store.peer_medians(cell))
            if reason:
                return self._flag(request, reason, context)
        engine = {"engine": request.engine, "engine_version": request.engine_version,
                  "weights": request.weights,
                  "engine_config_json": request.engine_config_json or "{}",
                  "engine_start_s": request.engine_start_s}
        try:
            stored = self.store.record_outcome(
                request.cell_id, request.worker_id, request.epoch, request.status,
                request.error, runs, engine,
                self.config.max_attempts)
        except StaleLease as exc:
            self.metrics.rejected("stale")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except NotHolder as exc:
            self.metrics.rejected("not_holder")
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("cell %s reported %s by %s (%d rows)", request.cell_id, request.status,
                 request.worker_id, stored)
        if self.on_result is not None and stored:
            self.on_result(cell["campaign_id"])
        if self.drift is not None and request.status == "done" and stored:
            self.drift.result_accepted(cell)
        if request.status in ("failed", "oom") and \
                self.store.cell(request.cell_id)["status"] == "pending":
            self.metrics.retried()
        return farm_pb2.ReportResultResponse(stored=stored)

    def ReportBlockTiming(self, request, context):
        """Store a leased block timing (kept apart from P: it feeds Place only)."""
        _require(context, request, "worker_id", "timing_id")
        if request.status not in ("done", "failed"):
            _abort_invalid(context, "status: must be done or failed")
        if request.status == "done":
            for name in ("tau_s", "tau_prefill_s"):
                value = getattr(request, name)
                if not math.isfinite(value) or value <= 0:
                    _abort_invalid(context, f"{name}: must be a finite number > 0 for a done "
                                            f"timing, got {value}")
        for name in ("device", "dtype", "torch_version"):
            if len(getattr(request, name)) > MAX_NAME_LEN:
                _abort_invalid(context, f"{name}: at most {MAX_NAME_LEN} characters")
        self._own_worker(request.worker_id, context)
        timing = {"tau_s": request.tau_s if request.status == "done" else None,
                  "tau_prefill_s": request.tau_prefill_s if request.status == "done" else None,
                  "device": request.device, "dtype": request.dtype,
                  "torch_version": request.torch_version, "error": request.error}
        try:
            stored = self.store.record_block_timing(request.timing_id, request.worker_id,
                                                    request.status, timing)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, f"timing_id: {exc}")
        except NotHolder as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("block timing %s reported %s by %s: tau %.3g s, prefill %.3g s",
                 request.timing_id, request.status, request.worker_id, request.tau_s,
                 request.tau_prefill_s)
        return farm_pb2.ReportBlockTimingResponse(stored=stored)

    def _flag(self, request, reason: str, context) -> farm_pb2.ReportResultResponse:
        """Keep an implausible result out of P and queue its cell for another worker."""
        try:
            quarantined = self.store.reject_result(request.cell_id, request.worker_id,
                                                   request.epoch, reason,
                                                   self.config.quarantine_after)
        except StaleLease as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except NotHolder as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.warning("result of cell %s by %s flagged: %s%s", request.cell_id, request.worker_id,
                    reason, " (worker quarantined)" if quarantined else "")
        self.metrics.rejected("implausible")
        return farm_pb2.ReportResultResponse(stored=0, flagged=reason)

    # -- campaigns --------------------------------------------------------------------

    def SubmitCampaign(self, request, context):
        """Validate a grid and store it as a campaign."""
        try:
            grid = json.loads(request.grid_json)
        except ValueError as exc:
            _abort_invalid(context, f"grid_json: not valid JSON ({exc})")
        try:
            campaign_id, n_cells = campaigns.create(self.store, grid)
        except GridError as exc:
            _abort_invalid(context, str(exc))
        log.info("campaign %s submitted: %d cells per hardware class", campaign_id, n_cells)
        return farm_pb2.SubmitCampaignResponse(campaign_id=campaign_id,
                                               cells_per_hardware_class=n_cells)

    def GetCampaignStatus(self, request, context):
        """Counts, per-worker progress and ETA of a campaign."""
        _require(context, request, "campaign_id")
        try:
            p = campaign_progress(self.store, request.campaign_id)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return farm_pb2.CampaignStatus(
            campaign_id=p["campaign_id"], name=p["name"], state=p["state"], cells=p["cells"],
            total_cells=p["total_cells"], eta_s=p["eta_s"],
            hardware_classes=p["hardware_classes"], created_at=p["created_at"],
            workers=[farm_pb2.WorkerProgress(**w) for w in p["workers"]],
            replica_groups=p["replica_groups"], strategy=p["strategy"],
            strategy_note=p["strategy_note"], **self._drift_fields(request.campaign_id))

    def _drift_fields(self, campaign_id: str) -> dict[str, Any]:
        """CampaignStatus's drift of the campaign's hardware classes, or why there is none."""
        if self.drift is None:
            return {"drift_note": "drift is not tracked by this coordinator"}
        report = self.drift.report(self.store.bound_classes(campaign_id))
        return {"drift": [farm_pb2.HardwareDrift(**d.to_dict()) for d in report],
                "drift_note": self.drift.note()}

    def ExportResults(self, request, context):
        """Stream a campaign's rows of P, with its meta JSON in the first chunk."""
        _require(context, request, "campaign_id")
        try:
            meta = campaigns.export_meta(self.store, request.campaign_id)
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        rows = [campaigns.result_row(r)
                for r in self.store.results(request.campaign_id, request.all_replicas)]
        yield farm_pb2.ExportChunk(rows=rows[:EXPORT_CHUNK_ROWS], meta_json=json.dumps(meta))
        for i in range(EXPORT_CHUNK_ROWS, len(rows), EXPORT_CHUNK_ROWS):
            yield farm_pb2.ExportChunk(rows=rows[i:i + EXPORT_CHUNK_ROWS])

    def ListWorkers(self, request, context):
        """Every registered worker with its state and measured RTTs."""
        now = time.time()
        peers = self.store.peer_rtts()
        out = []
        for w in self.store.workers():
            profile = json.loads(w["profile_json"])
            out.append(farm_pb2.WorkerInfo(
                worker_id=w["worker_id"], name=w["name"], hardware_class=w["class_id"],
                hardware_label=w["hardware_label"],
                hardware=farm_pb2.HardwareProfile(**profile),
                price_per_hour=w["price_per_hour"],
                state=worker_state(w, now, self.config),
                last_heartbeat=w["last_heartbeat"], current_cell=w["current_cell"] or "",
                rtt_s=w["rtt_s"] or 0.0,
                peer_rtt_s={b: rtt for (a, b), rtt in peers.items() if a == w["worker_id"]}))
        return farm_pb2.ListWorkersResponse(workers=out)
