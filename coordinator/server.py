"""The coordinator's gRPC server: Coordinator, Selector and Placement services, health,
reflection."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from metainf.client import MAX_MESSAGE_BYTES
from metainf.coordinator.active import ActiveConfig, ActivePlanner
from metainf.coordinator.auth import TokenAuthInterceptor, load_tokens
from metainf.coordinator.dashboard import DashboardServer, start_dashboard
from metainf.coordinator.drift import DriftConfig, DriftMonitor
from metainf.coordinator.farm_metrics import FarmMetrics, MetricsInterceptor
from metainf.coordinator.limits import ConcurrencyLimitInterceptor, Limits
from metainf.coordinator.retrain import RetrainConfig, Retrainer
from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.service import CoordinatorServicer
from metainf.coordinator.status import worker_state
from metainf.coordinator.store import Store
from metainf.v1 import farm_pb2_grpc

if TYPE_CHECKING:  # imported where the server starts: it loads the selector
    from metainf.coordinator.unsure import UnsureConfig

log = logging.getLogger(__name__)

SERVICE_NAMES = ("metainf.v1.Coordinator", "metainf.v1.Selector", "metainf.v1.Placement")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the coordinator process is started with."""

    db: Path
    host: str = "127.0.0.1"
    port: int = 50051
    model_dir: Path | None = None
    reflection: bool = True
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    limits: Limits = Limits()
    http_port: int | None = None
    """Port of the dashboard and /metrics (0 = any free port; None = no HTTP server)."""
    scheduler: SchedulerConfig = SchedulerConfig()
    retrain: RetrainConfig = RetrainConfig()
    """When the coordinator retrains MetaInf by itself (with model_dir only)."""
    drift: DriftConfig = DriftConfig()
    unsure: UnsureConfig | None = None
    """Unsure -> measure settings (None: UnsureConfig's defaults)."""
    active: ActiveConfig = ActiveConfig()
    """How active campaigns batch their cells."""


@dataclass
class Coordinator:
    """A running coordinator: the server, its port, its store and health servicer."""

    server: grpc.Server
    port: int
    store: Store
    health: health.HealthServicer
    metrics: FarmMetrics | None = None
    dashboard: DashboardServer | None = None
    drift: DriftMonitor | None = None
    retrainer: Retrainer | None = None

    def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish, then close the store."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.retrainer is not None:
            self.retrainer.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.drift is not None:
            self.drift.close()
        self.store.close()


def _farm_hardware(store: Store):
    def listing() -> list[tuple[str, dict, float]]:
        return [(h["label"], json.loads(h["profile_json"]), h["price_per_hour"])
                for h in store.hardware_classes()]
    return listing


def _farm_workers(store: Store, config: SchedulerConfig):
    """Lists the registered workers as placement sees them: profile, liveness, RTT, and
    their hardware class's block timing of the model being placed."""
    from metainf.placement.farm import FarmWorker

    def listing(model: str) -> list[FarmWorker]:
        now = time.time()
        peers = store.peer_rtts()
        out = []
        for w in store.workers():
            timing = store.block_timing(w["class_id"], model) if model else None
            out.append(FarmWorker(
                worker_id=w["worker_id"], name=w["name"], profile=json.loads(w["profile_json"]),
                alive=worker_state(w, now, config) == "alive", rtt_s=w["rtt_s"],
                peer_rtt_s={b: rtt for (a, b), rtt in peers.items() if a == w["worker_id"]},
                tau_s=timing["tau_s"] if timing else None,
                tau_prefill_s=timing["tau_prefill_s"] if timing else None,
                timing_l_in=timing["l_in"] if timing else 0))
        return out
    return listing


def _record_plan(store: Store):
    """Keeps each plan for the dashboard, and queues a block timing of the model for the
    hardware class of every registered worker whose tau had to be estimated."""
    def record(result: dict) -> None:
        store.save_plan(result)
        for server in result["servers"]:
            if server.get("worker_id") and server["tau_estimated"]:
                class_id = store.worker(server["worker_id"])["class_id"]
                if store.request_block_timing(class_id, result["model"]):
                    log.info("queued a block timing of %s for hardware class %s",
                             result["model"], class_id)
    return record


def create_server(config: ServerConfig) -> Coordinator:
    """Build and start the server on config.host:config.port (0 = any free port)."""
    from metainf.coordinator.unsure import MeasuringSelector, UnsureConfig
    from metainf.placement.service import PlacementServicer

    tokens = load_tokens(config.token_file) if config.token_file else None
    store = Store(config.db)
    metrics = FarmMetrics(store, config.scheduler)
    interceptors: list[grpc.ServerInterceptor] = [
        MetricsInterceptor(metrics), ConcurrencyLimitInterceptor(config.limits)]
    if tokens:
        interceptors.append(TokenAuthInterceptor(tokens))
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.limits.threads + 4),
                         options=options, interceptors=interceptors)
    selector = MeasuringSelector(store, config.unsure or UnsureConfig(),
                                 model_dir=config.model_dir, farm_hardware=_farm_hardware(store),
                                 on_answer=metrics.record_answer)
    drift = DriftMonitor(store, selector.current_model, config.drift)
    retrainer = _retrainer(config, store, metrics, selector)
    metrics.registry.register(drift)
    metrics.drift = drift
    active = ActivePlanner(store, selector.current_model, config.active,
                           on_batch=retrainer.request if retrainer else None)
    farm_pb2_grpc.add_CoordinatorServicer_to_server(
        CoordinatorServicer(store, config.scheduler, metrics, drift,
                            on_result=retrainer.result_stored if retrainer else None,
                            active=active), server)
    farm_pb2_grpc.add_SelectorServicer_to_server(selector, server)
    farm_pb2_grpc.add_PlacementServicer_to_server(
        PlacementServicer(_farm_workers(store, config.scheduler), on_plan=_record_plan(store)),
        server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert:
        port = server.add_secure_port(address, server_credentials(config))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port}")
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    recover(store, config.scheduler)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    dashboard = None
    if config.http_port is not None:
        dashboard = start_dashboard(store, config.host, config.http_port, tokens, metrics,
                                    config.scheduler)
    if retrainer is not None:
        retrainer.start()
    return Coordinator(server, port, store, health_servicer, metrics, dashboard, drift=drift,
                       retrainer=retrainer)


def _retrainer(config: ServerConfig, store: Store, metrics: FarmMetrics,
               selector) -> Retrainer | None:
    """The retrainer of a coordinator with a model directory (None without one or when
    retraining is off); the Selector loads what it promotes at once (answer cache reset)."""
    metrics.watch_model(selector.serving_summary)
    if config.model_dir is None or not config.retrain.enabled:
        return None

    def done(result: dict) -> None:
        metrics.retrained(result["outcome"])
        if result["outcome"] == "promoted":
            selector.reload()

    retrainer = Retrainer(store, config.model_dir, config.retrain, on_done=done)
    metrics.retrain_status = retrainer.status
    return retrainer


def recover(store: Store, config: SchedulerConfig) -> None:
    """Make a restarted coordinator's state consistent before it reports SERVING.

    Leases found in flight get a fresh deadline, so workers that are still running
    their cells can report; the workers' own retries with backoff reconnect them.
    """
    refreshed = store.refresh_leases(config.lease_s)
    if refreshed:
        log.info("recovery: %d lease(s) in flight given a fresh %.0f s deadline", refreshed,
                 config.lease_s)


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    """TLS with the server certificate; mutual TLS when a client CA is given."""
    if not config.tls_key:
        raise ValueError("--tls-key: required with --tls-cert")
    ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=ca, require_client_auth=ca is not None)


def serve(config: ServerConfig) -> None:
    """Run the coordinator until SIGTERM or SIGINT, then stop gracefully."""
    coordinator = create_server(config)
    if not config.token_file:
        loopback = config.host in ("127.0.0.1", "localhost", "::1")
        (log.info if loopback else log.warning)(
            "coordinator runs open (no --token-file): anyone who can reach %s may register "
            "workers and write results", config.host)
    log.info("coordinator listening on %s:%d (db %s)", config.host, coordinator.port,
             config.db)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping: health NOT_SERVING, finishing in-flight calls")
    coordinator.stop(grace=10.0)
