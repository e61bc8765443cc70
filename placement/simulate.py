"""A seeded, deterministic discrete-event simulator of a plan under Poisson arrivals.

Each client sends requests as a Poisson process at its rate; the first `requests`
arrivals (all clients merged) are simulated. A client runs at most its share of the
|R| planned sessions at once (`load.cap_concurrency`, on by default: "one client with
3 concurrent requests"); later arrivals wait at the client, first come first served.
When a request is admitted the plan's router names the routes it may take; it starts
on the first whose servers all have memory for its caches, else it queues for memory
(first come, first served; a later request may start when an earlier one cannot).
A running session holds k_j · s_c bytes on every server of its route until its last
token; its duration is the performance model's (time barely depends on how many
sessions share a server while memory lasts). Time per token of a request is
(finish - arrival) / l_out: queueing (at the client and for memory), prefill, decode.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fleet import Fleet
from .perf import Route, cache_need, request_time
from .plan import Plan, Session, SimState, Waiting

EPS = 1e-6
"""Bytes of slack when comparing memory (floating-point sums)."""


@dataclass(frozen=True)
class SimResult:
    """Per-request outcomes of one simulation, and their summary."""

    arrival: np.ndarray
    start: np.ndarray
    finish: np.ndarray
    client: np.ndarray
    hops: np.ndarray
    l_out: int
    routes: tuple[Route, ...] = ()
    failed: int = 0
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def s_per_token(self) -> np.ndarray:
        """(finish - arrival) / l_out per served request."""
        return (self.finish - self.arrival) / self.l_out

    @property
    def queue_s(self) -> np.ndarray:
        """Seconds each served request waited for memory."""
        return self.start - self.arrival

    def summary(self) -> dict[str, Any]:
        """Mean, p50, p99 time per token; queueing; service time; throughput."""
        if len(self.arrival) == 0:
            return {"served": 0, "failed": self.failed, "errors": list(self.errors)}
        tpt = self.s_per_token
        span = float(self.finish.max() - self.arrival.min())
        return {
            "mean_s_per_token": float(tpt.mean()),
            "p50_s_per_token": float(np.percentile(tpt, 50)),
            "p99_s_per_token": float(np.percentile(tpt, 99)),
            "mean_service_s_per_token": float(((self.finish - self.start) / self.l_out).mean()),
            "mean_queue_s": float(self.queue_s.mean()),
            "p99_queue_s": float(np.percentile(self.queue_s, 99)),
            "throughput_tok_s": float(len(tpt) * self.l_out / span) if span > 0 else 0.0,
            "mean_hops": float(self.hops.mean()),
            "served": int(len(tpt)),
            "failed": self.failed,
        }


def arrivals(fleet: Fleet, seed: int, requests: int) -> list[tuple[float, int]]:
    """The first `requests` (time, client) arrivals of the merged Poisson processes."""
    rng = np.random.default_rng(seed)
    events: list[tuple[float, int]] = []
    for c, rate in enumerate(fleet.client_rates):
        gaps = rng.exponential(1.0 / rate, requests) if rate > 0 else np.empty(0)
        events.extend((float(t), c) for t in np.cumsum(gaps))
    events.sort()
    return events[:requests]


class _Sim:
    """The event loop's state (one simulation)."""

    def __init__(self, plan: Plan, fleet: Fleet, cap: bool) -> None:
        self.plan, self.fleet = plan, fleet
        self.slots = [max(1, int(s)) if cap else None for s in fleet.client_sessions]
        self.backlog: list[list[tuple[int, float]]] = [[] for _ in fleet.client_names]
        self.arrived: dict[int, float] = {}
        self.capacity = plan.cache_capacity
        self.state = SimState(0.0, plan.cache_capacity.astype(float).copy())
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.start: dict[int, float] = {}
        self.finish: dict[int, float] = {}
        self.routes: dict[int, Route] = {}
        self.errors: list[str] = []

    def push(self, t: float, kind: int, idx: int) -> None:
        """Schedule an event (kind 0: a session ends; 1: a request arrives)."""
        heapq.heappush(self.events, (t, kind, self.seq, idx))
        self.seq += 1

    def fits(self, route: Route) -> bool:
        """Whether every server of the route has free memory for its caches now."""
        return all(self.state.free[j] + EPS >= b
                   for j, b in cache_need(self.fleet, route).items())

    def ever_fits(self, route: Route) -> bool:
        """Whether the route's caches fit at all (on otherwise empty servers)."""
        return all(self.capacity[j] + EPS >= b for j, b in cache_need(self.fleet, route).items())

    def begin(self, w: Waiting, route: Route) -> None:
        """Start a session: take its memory, schedule its end."""
        now = self.state.now
        need = cache_need(self.fleet, route)
        for j, b in need.items():
            self.state.free[j] -= b
        end = now + request_time(self.fleet, w.client, route)
        self.state.active.append(Session(w.request, w.client, route, now, end, need))
        self.start[w.request], self.finish[w.request] = now, end
        self.routes[w.request] = route
        self.push(end, 0, w.request)

    def try_begin(self, w: Waiting) -> bool:
        """Start on the first candidate route that fits now."""
        for route in w.routes:
            if self.fits(route):
                self.begin(w, route)
                return True
        return False

    def arrive(self, request: int, client: int) -> None:
        """Admit the request if its client has a free slot, else keep it at the client."""
        self.arrived[request] = self.state.now
        slots = self.slots[client]
        if slots is not None and slots <= 0:
            self.backlog[client].append((request, self.state.now))
            return
        self.admit(request, client)

    def admit(self, request: int, client: int) -> None:
        """Take a client slot; ask the router for routes; start or queue for memory."""
        if self.slots[client] is not None:
            self.slots[client] -= 1
        routes = tuple(r for r in self.plan.router.routes(self.fleet, client, self.state)
                       if self.ever_fits(r))
        if not routes:
            self.errors.append(f"request {request}: no route of client "
                               f"{self.fleet.client_names[client]} fits in memory")
            self.release_slot(client)
            return
        w = Waiting(request, client, self.arrived[request], routes)
        if not self.try_begin(w):
            self.state.queued.append(w)

    def end(self, request: int) -> None:
        """Release a session's memory and start what now fits, in arrival order."""
        for k, s in enumerate(self.state.active):
            if s.request == request:
                for j, b in s.need.items():
                    self.state.free[j] += b
                del self.state.active[k]
                self.release_slot(s.client)
                break
        self.state.queued = [w for w in self.state.queued if not self.try_begin(w)]

    def release_slot(self, client: int) -> None:
        """Give a client slot back and admit the client's oldest waiting request."""
        if self.slots[client] is None:
            return
        self.slots[client] += 1
        if self.backlog[client]:
            request, _ = self.backlog[client].pop(0)
            self.admit(request, client)


def simulate(plan: Plan, fleet: Fleet, seed: int | None = None,
             requests: int | None = None, cap_concurrency: bool | None = None) -> SimResult:
    """Simulate `requests` Poisson arrivals (seeded) under `plan`; deterministic per seed."""
    seed = fleet.seed if seed is None else seed
    n = fleet.load.requests if requests is None else requests
    cap = fleet.load.cap_concurrency if cap_concurrency is None else cap_concurrency
    arr = arrivals(fleet, seed, n)
    sim = _Sim(plan, fleet, cap)
    for i, (t, _) in enumerate(arr):
        sim.push(t, 1, i)
    while sim.events:
        t, kind, _, idx = heapq.heappop(sim.events)
        sim.state.now = t
        if kind == 1:
            sim.arrive(idx, arr[idx][1])
        else:
            sim.end(idx)
    served = sorted(sim.start)
    return SimResult(
        arrival=np.asarray([arr[i][0] for i in served]),
        start=np.asarray([sim.start[i] for i in served]),
        finish=np.asarray([sim.finish[i] for i in served]),
        client=np.asarray([arr[i][1] for i in served], int),
        hops=np.asarray([len(sim.routes[i]) for i in served], int),
        l_out=fleet.load.l_out,
        routes=tuple(sim.routes[i] for i in served),
        failed=len(arr) - len(served),
        errors=tuple(sim.errors),
    )
