"""A plan: which blocks each server holds and how each client's requests are routed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .fleet import Fleet
from .perf import Route, cache_need, per_token, request_time


@dataclass
class Session:
    """A request holding cache memory on its route until `end`."""

    request: int
    client: int
    route: Route
    start: float
    end: float
    need: dict[int, float]


@dataclass
class Waiting:
    """A request queued for memory, with the routes it may start on (first preferred)."""

    request: int
    client: int
    arrival: float
    routes: tuple[Route, ...]


@dataclass
class SimState:
    """What a router may look at when a request arrives: free memory, sessions, queue."""

    now: float
    free: np.ndarray
    active: list[Session] = field(default_factory=list)
    queued: list[Waiting] = field(default_factory=list)


class Router(Protocol):
    """Chooses, when a request arrives, the routes it may take (first preferred)."""

    def routes(self, fleet: Fleet, client: int, state: SimState) -> Sequence[Route]:
        """Candidate routes for a request of `client` arriving in `state`."""
        ...


@dataclass(frozen=True)
class StaticRouter:
    """The plan's own routes per client, whatever the state (offline routing)."""

    by_client: tuple[tuple[Route, ...], ...]

    def routes(self, fleet: Fleet, client: int, state: SimState) -> Sequence[Route]:
        """The client's planned routes."""
        return self.by_client[client]


@dataclass
class Plan:
    """Block ranges per server, routes per client, and how the plan was made."""

    algorithm: str
    ranges: tuple[tuple[int, int] | None, ...]
    cache_capacity: np.ndarray
    routes: tuple[tuple[Route, ...], ...]
    router: Router
    plan_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def starts_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """Arrays of first and one-past-last block per server (0, 0 where none)."""
        return range_bounds(self.ranges)

    def objective(self, fleet: Fleet) -> float:
        """Σ over the planned |R| sessions of their request time (seconds), as planned."""
        total = 0.0
        for c, routes in enumerate(self.routes):
            n = int(fleet.client_sessions[c])
            if not routes or n == 0:
                continue
            if len(routes) == n:
                total += sum(request_time(fleet, c, r) for r in routes)
            else:
                total += n * request_time(fleet, c, routes[0])
        return total

    def predicted_s_per_token(self, fleet: Fleet, client: int) -> float:
        """Time per token of the client's first route, without queueing."""
        return per_token(fleet, client, self.routes[client][0])

    def memory_used(self, fleet: Fleet, sessions: Sequence[tuple[int, Route]]) -> np.ndarray:
        """Bytes each server uses for its blocks plus the caches of `sessions`."""
        used = np.asarray([(r[1] - r[0]) * fleet.block_bytes if r else 0.0
                           for r in self.ranges])
        for _, route in sessions:
            for j, b in cache_need(fleet, route).items():
                used[j] += b
        return used

    def planned_sessions(self, fleet: Fleet) -> list[tuple[int, Route]]:
        """(client, route) for each of the |R| planned sessions."""
        out = []
        for c, routes in enumerate(self.routes):
            n = int(fleet.client_sessions[c])
            out.extend((c, routes[k % len(routes)] if len(routes) == n else routes[0])
                       for k in range(n))
        return out


def range_bounds(ranges: Sequence[tuple[int, int] | None]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of first and one-past-last block per server of `ranges` (0, 0 where none)."""
    starts = np.asarray([r[0] if r else 0 for r in ranges], int)
    ends = np.asarray([r[1] if r else 0 for r in ranges], int)
    return starts, ends


def cache_capacity(fleet: Fleet, ranges: Sequence[tuple[int, int] | None]) -> np.ndarray:
    """Memory left for caches on each server once its blocks are loaded."""
    blocks = np.asarray([(r[1] - r[0]) if r else 0 for r in ranges], float)
    return fleet.memory_bytes - blocks * fleet.block_bytes
