"""The seed paper's conservative greedy placement with shortest-path routing.

Each server takes as many blocks as fit while the caches of all |R| planned sessions
still fit on every one of them (so any routing is feasible). Servers are taken in
order of amortised time, τ_j plus the worst client RTT spread over its blocks, and
each covers the most under-served window (least coverage summed over the window,
earliest on ties). Every client then takes the shortest path over (server, block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import PlacementError
from .fleet import Fleet
from .plan import Plan, StaticRouter, cache_capacity
from .routing import shortest_route


def conservative_blocks(fleet: Fleet) -> np.ndarray:
    """m_j: blocks that fit on server j with |R| sessions' caches on each of them."""
    return fleet.max_blocks(fleet.load.sessions)


def greedy_ranges(fleet: Fleet) -> tuple[tuple[int, int] | None, ...]:
    """Block range per server (None where a server holds none) by the greedy rule."""
    L = fleet.num_blocks
    m = conservative_blocks(fleet)
    if int(m.sum()) < L:
        raise PlacementError(
            f"load.sessions: with caches for {fleet.load.sessions} sessions the fleet holds "
            f"{int(m.sum())} of {L} blocks; plan for fewer sessions or add memory")
    worst = fleet.rtt_cs.max(axis=0)
    used = np.flatnonzero(m > 0)
    amortised = fleet.tau_s[used] + worst[used] / m[used]
    order = used[np.argsort(amortised, kind="stable")]
    coverage = np.zeros(L)
    ranges: list[tuple[int, int] | None] = [None] * fleet.num_servers
    for j in order:
        k = int(m[j])
        sums = np.convolve(coverage, np.ones(k), mode="valid")
        start = int(np.argmin(sums))
        coverage[start:start + k] += 1
        ranges[j] = (start, start + k)
    return tuple(ranges)


def client_routes(fleet: Fleet, ranges) -> tuple[tuple, ...]:
    """Each client's shortest route over the placement (one route, used by all its sessions)."""
    starts = np.asarray([r[0] if r else 0 for r in ranges], int)
    ends = np.asarray([r[1] if r else 0 for r in ranges], int)
    out = []
    for c in range(fleet.num_clients):
        cost, route = shortest_route(fleet, c, starts, ends)
        if route is None:
            raise PlacementError(f"clients.{c}: no route covers all blocks")
        out.append((route,))
    return tuple(out)


@dataclass(frozen=True)
class GreedyPlanner:
    """Conservative greedy placement (the paper's), shortest-path routing per client."""

    name: str = "greedy"

    def plan(self, fleet: Fleet, seed: int) -> Plan:
        """Place by the greedy rule, then route every client by shortest path."""
        ranges = greedy_ranges(fleet)
        routes = client_routes(fleet, ranges)
        return Plan(self.name, ranges, cache_capacity(fleet, ranges), routes,
                    StaticRouter(routes))
