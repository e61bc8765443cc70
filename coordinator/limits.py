"""Load shedding: separate concurrency limits per kind of caller, excess refused at once.

Select traffic must never starve the workers' RPCs: each group has its own limit and
a call beyond it gets RESOURCE_EXHAUSTED instead of waiting for a thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc

from metainf.coordinator.handlers import rewrap

WORKER_METHODS = ("RegisterWorker", "Heartbeat", "LeaseCell", "ReportResult",
                  "ReportBlockTiming")


@dataclass(frozen=True)
class Limits:
    """Concurrent calls allowed per group; the server's thread pool is their sum."""

    worker: int = 12
    select: int = 12
    client: int = 8

    @property
    def threads(self) -> int:
        """Threads the server needs so no group waits on another."""
        return self.worker + self.select + self.client


def group_of(method: str) -> str | None:
    """The limit group of a full RPC method name (None: not limited)."""
    if method.startswith("/metainf.v1.Selector/"):
        return "select"
    if method.startswith("/metainf.v1.Placement/"):
        return "client"
    if method.startswith("/metainf.v1.Coordinator/"):
        return "worker" if method.rsplit("/", 1)[-1] in WORKER_METHODS else "client"
    return None


class ConcurrencyLimitInterceptor(grpc.ServerInterceptor):
    """Sheds calls beyond each group's concurrency limit with RESOURCE_EXHAUSTED."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._slots = {g: threading.BoundedSemaphore(getattr(limits, g))
                       for g in ("worker", "select", "client")}

    def intercept_service(self, continuation, handler_call_details):
        """Wrap the handler so it runs only within its group's limit."""
        handler = continuation(handler_call_details)
        group = group_of(handler_call_details.method)
        if handler is None or group is None:
            return handler
        slots = self._slots[group]

        def around(call, request, context):
            if not slots.acquire(blocking=False):
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"too many concurrent {group} calls (limit "
                              f"{getattr(self.limits, group)}); retry with backoff")
            try:
                return call(request, context)
            finally:
                slots.release()

        return rewrap(handler, around)
