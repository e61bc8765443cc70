"""The worker agent: register, heartbeat, lease cells, run them in the engine host (or time
a block for placement), report."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from metainf.client import DEFAULT_DEADLINE_S, channel
from metainf.v1 import farm_pb2, farm_pb2_grpc
from metainf.worker.block_timing import device_of, run_block_timing
from metainf.worker.engine_host import EngineHost
from metainf.worker.engines.base import EngineOptions
from metainf.worker.hardware import probe
from metainf.worker.rtt import measure_rtt
from metainf.worker.runner import Cell

log = logging.getLogger(__name__)

KV_SHARE_PER_MACHINE = 0.3
"""RAM share for KV caches on a CPU machine, split between workers by their cores."""

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
PEER_TIMEOUT_S = 2.0
"""Deadline of one health check on a peer's echo service."""


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker starts: where the coordinator is and what share of the machine it uses."""

    coordinator: str
    name: str = ""
    cpus: tuple[int, ...] = ()
    price_per_hour: float = 0.0
    engine: str = "vllm"
    token_file: str | None = None
    max_cells: int = 0
    """Stop after this many cells (0 = run until stopped)."""
    exit_when_idle_s: float = 0.0
    """Stop after this long without work (0 = never)."""
    echo: bool = True
    """Serve the echo service peers time their RTT to (for placement)."""
    echo_port: int = 0
    """Port of the echo service (0 = any free port)."""
    echo_host: str = ""
    """Host the echo service binds to and peers reach it on; empty: loopback when the
    coordinator is on loopback, else every interface, reached at the address the
    coordinator sees this worker at."""


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def start_echo(config: WorkerConfig) -> tuple[grpc.Server, int, str]:
    """Start the echo service (the standard gRPC health service, which does no work);
    return (server, port, host to advertise or "")."""
    host = config.echo_host
    coordinator_host = config.coordinator.rsplit(":", 1)[0]
    bind = host or ("127.0.0.1" if coordinator_host in LOOPBACK else "0.0.0.0")
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port(f"{bind}:{config.echo_port}")
    server.start()
    return server, port, host


def engine_options(profile: dict, cpus: tuple[int, ...]) -> EngineOptions:
    """Engine placement for this worker: its cores and its share of memory."""
    if profile["kind"] == "gpu":
        return EngineOptions(device="gpu", memory_share=0.9)
    machine = os.cpu_count() or 1
    share = KV_SHARE_PER_MACHINE * (len(cpus) / machine if cpus else 1.0)
    return EngineOptions(cpus=cpus, device="cpu", memory_share=round(max(share, 0.05), 3))


class WorkerAgent:
    """One worker process: one hardware profile, one engine host, one cell at a time."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        self.profile = probe(list(config.cpus) or None)
        self.options = engine_options(self.profile, config.cpus)
        self.channel = channel(config.coordinator, config.token_file)
        self.stub = farm_pb2_grpc.CoordinatorStub(self.channel)
        self.host = EngineHost(config.engine, self.options)
        self.worker_id = ""
        self.heartbeat_s = 10.0
        self._current: tuple[str, int] | None = None
        self._abort = threading.Event()
        self._stop = threading.Event()
        self.cells_run = 0
        self.echo: grpc.Server | None = None
        self._peer_rtts: dict[str, float] = {}

    def _call(self, method: str, request, timeout: float = DEFAULT_DEADLINE_S):
        """Call an RPC, retrying with backoff while the coordinator is unreachable."""
        delay = 0.5
        while True:
            try:
                return getattr(self.stub, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or self._stop.is_set():
                    raise
                log.warning("%s: coordinator unreachable (%s); retrying in %.1f s",
                            method, exc.code().name, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 15.0)

    def register(self) -> None:
        """Register this worker's hardware with the coordinator."""
        from metainf.worker.engines.registry import create_engine
        version = create_engine(self.config.engine).version()
        echo_port, echo_host = 0, ""
        if self.config.echo and self.echo is None:
            self.echo, echo_port, echo_host = start_echo(self.config)
        resp = self._call("RegisterWorker", farm_pb2.RegisterWorkerRequest(
            name=self.config.name, hardware=farm_pb2.HardwareProfile(**self.profile),
            price_per_hour=self.config.price_per_hour, engines=[self.config.engine],
            engine_version=version, echo_port=echo_port, echo_host=echo_host))
        self.worker_id, self.heartbeat_s = resp.worker_id, resp.heartbeat_interval_s
        log.info("registered as %s, hardware class %s", self.worker_id, resp.hardware_label)

    def heartbeat(self, cell_id: str = "", epoch: int = 0) -> farm_pb2.HeartbeatResponse:
        """One heartbeat for the running cell (if any), with the RTT to the coordinator
        measured just before it and to the peers the last one named (for placement); then
        time the peers this one names."""
        peer_rtts, self._peer_rtts = self._peer_rtts, {}
        resp = self.stub.Heartbeat(farm_pb2.HeartbeatRequest(
            worker_id=self.worker_id, cell_id=cell_id, epoch=epoch,
            rtt_s=measure_rtt(self.channel), peer_rtt_s=peer_rtts), timeout=DEFAULT_DEADLINE_S)
        for peer in resp.measure_peers:
            with grpc.insecure_channel(peer.address) as ch:
                rtt = measure_rtt(ch, timeout_s=PEER_TIMEOUT_S)
            if rtt > 0:
                self._peer_rtts[peer.worker_id] = rtt
            else:
                log.info("peer %s at %s did not answer its echo", peer.worker_id, peer.address)
        return resp

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            cell_id, epoch = self._current or ("", 0)
            try:
                resp = self.heartbeat(cell_id, epoch)
            except grpc.RpcError as exc:
                log.warning("heartbeat failed: %s", exc.code().name)
                continue
            if cell_id and resp.abort_cell:
                log.warning("coordinator says cell %s is no longer ours: aborting", cell_id)
                self._abort.set()

    def run(self) -> int:
        """Work until stopped (or max_cells / idle limit); return the number of cells run."""
        self.register()
        beat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        beat.start()
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                resp = self._call("LeaseCell", farm_pb2.LeaseCellRequest(
                    worker_id=self.worker_id, warm_engine_key=self.host.warm_key))
                if resp.HasField("block_timing"):
                    self._run_block_timing(resp.block_timing)
                    idle_since = time.monotonic()
                    continue
                if not resp.HasField("cell"):
                    if self.config.exit_when_idle_s and \
                            time.monotonic() - idle_since > self.config.exit_when_idle_s:
                        break
                    self._stop.wait(resp.retry_after_s or 2.0)
                    continue
                self._run_cell(resp.cell)
                idle_since = time.monotonic()
                if self.config.max_cells and self.cells_run >= self.config.max_cells:
                    break
        finally:
            self._stop.set()
            self.host.close()
            if self.echo is not None:
                self.echo.stop(grace=None)
                self.echo = None
        return self.cells_run

    def _run_cell(self, spec: farm_pb2.CellSpec) -> None:
        self._abort.clear()
        self._current = (spec.cell_id, spec.epoch)
        log.info("running cell %s: %s %s b=%d", spec.cell_id, spec.model, spec.method,
                 spec.batch_size)
        try:
            outcome = self.host.run(Cell.from_spec(spec), spec.timeout_s, self._abort.is_set)
        finally:
            self._current = None
        runs = [farm_pb2.RunResult(**{k: v for k, v in r.items() if v is not None})
                for r in outcome.get("runs", [])]
        report = farm_pb2.ReportResultRequest(
            worker_id=self.worker_id, campaign_id=spec.campaign_id, cell_id=spec.cell_id,
            epoch=spec.epoch, status=outcome["status"], error=outcome.get("error", ""),
            runs=runs, engine=outcome.get("engine", self.config.engine),
            engine_version=outcome.get("engine_version", ""),
            weights=outcome.get("weights", ""),
            engine_config_json=outcome.get("engine_config_json", "{}"),
            engine_start_s=outcome.get("engine_start_s", 0.0))
        try:
            self._call("ReportResult", report)
        except grpc.RpcError as exc:
            # A stale lease (another worker took the cell over) is not this worker's error.
            log.error("report of cell %s refused: %s: %s", spec.cell_id, exc.code().name,
                      exc.details())
        self.cells_run += 1

    def _run_block_timing(self, spec: farm_pb2.BlockTimingSpec) -> None:
        """Time one block of the spec's model on this worker's device and report it."""
        log.info("block timing %s: one block of %s, prefill %d tokens", spec.timing_id,
                 spec.model, spec.l_in)
        outcome = run_block_timing(spec.model, spec.l_in, spec.repeats,
                                   device_of(self.profile), spec.timeout_s)
        try:
            self._call("ReportBlockTiming", farm_pb2.ReportBlockTimingRequest(
                worker_id=self.worker_id, timing_id=spec.timing_id, **outcome))
        except grpc.RpcError as exc:
            log.error("report of block timing %s refused: %s: %s", spec.timing_id,
                      exc.code().name, exc.details())

    def stop(self) -> None:
        """Ask the agent to stop after the current cell."""
        self._stop.set()
