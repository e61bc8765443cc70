"""Prometheus metrics of the farm in their own registry, and a gRPC interceptor that feeds them."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.status import CELL_STATES, WORKER_STATES, cells_by_state, worker_states
from metainf.coordinator.store import Store

log = logging.getLogger(__name__)

SELECT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Buckets of the Select latency histogram, 0.5 ms to 1 s."""

SELECT_METHOD = "/metainf.v1.Selector/Select"
RECENT_SELECTS = 2048
"""Select latencies kept for the dashboard's exact p50/p99."""
RECENT_ANSWERS = 10
"""Latest Select answers kept for the dashboard (a ring: older ones are forgotten)."""


class _StoreCollector:
    """Gauges read from the store at scrape time: cells by state, workers by state."""

    def __init__(self, store: Store | None, scheduler: SchedulerConfig):
        self._store = store
        self._scheduler = scheduler

    def describe(self) -> Iterator[Metric]:
        """Names only, so that registering does not read the store."""
        yield GaugeMetricFamily("metainf_cells", "Cells of every campaign by state",
                                labels=["state"])
        yield GaugeMetricFamily("metainf_workers", "Registered workers by state",
                                labels=["state"])

    def collect(self) -> Iterator[Metric]:
        """Read the store now; nothing when there is no store or it is closed."""
        if self._store is None:
            return
        try:
            cells = cells_by_state(self._store)
            workers = worker_states(self._store, self._scheduler)
        except sqlite3.ProgrammingError:  # store closed: the coordinator is stopping
            return
        g = GaugeMetricFamily("metainf_cells", "Cells of every campaign by state",
                              labels=["state"])
        for state in (*CELL_STATES, *sorted(set(cells) - set(CELL_STATES))):
            g.add_metric([state], cells.get(state, 0))
        yield g
        w = GaugeMetricFamily("metainf_workers", "Registered workers by state", labels=["state"])
        for state in WORKER_STATES:
            w.add_metric([state], sum(1 for x in workers if x["state"] == state))
        yield w


ModelInfo = Callable[[], "dict[str, Any] | None"]
"""Tells what serves Select now: version, trained_at, n_tasks, n_pairs, rows, heldout
(None before a model is trained)."""


class _ModelCollector:
    """The serving model's training time, read at scrape time."""

    def __init__(self, serving: ModelInfo):
        self._serving = serving

    def describe(self) -> Iterator[Metric]:
        """Names only."""
        yield GaugeMetricFamily("metainf_model_trained_timestamp_seconds",
                                "When the model serving Select was trained (Unix seconds)",
                                labels=["version"])

    def collect(self) -> Iterator[Metric]:
        """One sample labelled with the serving version; none before a model serves."""
        g = GaugeMetricFamily("metainf_model_trained_timestamp_seconds",
                              "When the model serving Select was trained (Unix seconds)",
                              labels=["version"])
        info = self._serving()
        if info and info.get("trained_at"):
            g.add_metric([info["version"]], float(info["trained_at"]))
        yield g


class FarmMetrics:
    """The farm's Prometheus metrics in a registry of their own (one per coordinator)."""

    def __init__(self, store: Store | None = None, scheduler: SchedulerConfig | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StoreCollector(store, scheduler or SchedulerConfig()))
        self.lease_expiries = Counter(
            "metainf_lease_expiries", "Leases whose deadline passed (cell put back in the queue)",
            registry=self.registry)
        self.cell_retries = Counter(
            "metainf_cell_retries", "Failed cell attempts put back in the queue for a retry",
            registry=self.registry)
        self.result_rejections = Counter(
            "metainf_result_rejections", "Reported results refused, by reason",
            ["reason"], registry=self.registry)
        self.select_latency = Histogram(
            "metainf_select_latency_seconds", "Time to answer a Select call, in seconds",
            buckets=SELECT_BUCKETS_S, registry=self.registry)
        self.rpc_errors = Counter(
            "metainf_rpc_errors", "RPCs that ended with a non-OK status, by method and code",
            ["method", "code"], registry=self.registry)
        self.retrains = Counter(
            "metainf_retrains", "Automatic retrainings of MetaInf, by outcome (promoted, kept "
            "unpromoted, skipped, failed)", ["outcome"], registry=self.registry)
        self.serving_model: ModelInfo = lambda: None
        self.retrain_status: Callable[[], dict[str, Any] | None] = lambda: None
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=RECENT_SELECTS)
        self._select_count = 0
        self._answers: deque[tuple[float, dict[str, Any]]] = deque(maxlen=RECENT_ANSWERS)
        self.drift: Any = None
        """The coordinator's DriftMonitor (report() and note() for the dashboard), if any."""

    def watch_model(self, serving: ModelInfo,
                    retrain_status: Callable[[], dict[str, Any] | None] | None = None) -> None:
        """Export and show the serving model (and the retrainer's state, when there is one)."""
        self.serving_model = serving
        if retrain_status is not None:
            self.retrain_status = retrain_status
        self.registry.register(_ModelCollector(serving))

    def retrained(self, outcome: str) -> None:
        """One automatic retraining ended in this outcome."""
        self.retrains.labels(outcome=outcome).inc()

    def observe_select(self, seconds: float) -> None:
        """One answered Select call took this long."""
        self.select_latency.observe(seconds)
        with self._lock:
            self._recent.append(seconds)
            self._select_count += 1

    def record_answer(self, answer: dict[str, Any]) -> None:
        """One Select answer, summarised (question, choice, confidence, out-of-distribution
        axes), for the dashboard's latest answers; a deque append, no lock needed."""
        self._answers.append((time.time(), answer))

    def latest_answers(self) -> list[tuple[float, dict[str, Any]]]:
        """(time, summary) of the latest Select answers, newest first."""
        return list(reversed(self._answers))

    def rpc_error(self, method: str, code: str) -> None:
        """An RPC ended with a non-OK status code (its name, e.g. NOT_FOUND)."""
        self.rpc_errors.labels(method=method, code=code).inc()

    def lease_expired(self, n: int = 1) -> None:
        """`n` leases expired."""
        if n > 0:
            self.lease_expiries.inc(n)

    def retried(self) -> None:
        """A failed cell attempt went back to the queue."""
        self.cell_retries.inc()

    def rejected(self, reason: str) -> None:
        """A reported result was refused (e.g. invalid, stale, not_holder, implausible)."""
        self.result_rejections.labels(reason=reason).inc()

    def select_summary(self) -> dict[str, Any]:
        """Select calls so far and the p50/p99 latency (s) of the latest ones (None if none)."""
        with self._lock:
            recent = sorted(self._recent)
            count = self._select_count

        def quantile(q: float) -> float | None:
            if not recent:
                return None
            return recent[min(len(recent) - 1, max(0, int(round(q * (len(recent) - 1)))))]

        return {"count": count, "p50_s": quantile(0.5), "p99_s": quantile(0.99),
                "window": len(recent)}

    def rpc_error_counts(self) -> dict[tuple[str, str], float]:
        """(method, code) -> RPC errors so far."""
        out = {}
        for metric in self.rpc_errors.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["method"], sample.labels["code"])] = sample.value
        return out

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


def _code_name(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts RPC errors by method and status code, and times Select calls.

    Put it first in the server's interceptor list so that it also sees the refusals
    of the interceptors after it (a missing token counts as UNAUTHENTICATED). A
    handler's ``context.abort`` raises after setting the code, and a handler may also
    ``set_code`` and return: both are read from ``context.code()``; any other
    exception counts as UNKNOWN. Successful Select calls feed ``observe_select``, so
    the servicer needs no timing code of its own.
    """

    def __init__(self, metrics: FarmMetrics):
        self._metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        """Wrap the method's handler (whatever its streaming shape)."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        label = method.lstrip("/")
        timed = method == SELECT_METHOD
        if handler.request_streaming and handler.response_streaming:
            kind, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            kind, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            kind, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
        else:
            kind, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        wrapped = (self._streaming(kind, label) if handler.response_streaming
                   else self._unary(kind, label, timed))
        return factory(wrapped, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)

    def _record(self, label: str, context, failed: bool) -> None:
        code = context.code()
        if code is not None and code != grpc.StatusCode.OK:
            self._metrics.rpc_error(label, _code_name(code))
        elif failed:
            self._metrics.rpc_error(label, "UNKNOWN")

    def _unary(self, inner: Callable, label: str, timed: bool) -> Callable:
        def behaviour(request, context):
            start = time.perf_counter()
            try:
                response = inner(request, context)
            except BaseException:
                self._record(label, context, failed=True)
                raise
            self._record(label, context, failed=False)
            code = context.code()
            if timed and (code is None or code == grpc.StatusCode.OK):
                self._metrics.observe_select(time.perf_counter() - start)
            return response
        return behaviour

    def _streaming(self, inner: Callable, label: str) -> Callable:
        def behaviour(request, context):
            try:
                yield from inner(request, context)
            except BaseException as exc:
                if not isinstance(exc, GeneratorExit):  # client went away: not an error
                    self._record(label, context, failed=True)
                raise
            self._record(label, context, failed=False)
        return behaviour

