"""The seed paper's conservative greedy placement with shortest-path routing.

Each server takes as many blocks as fit while the caches of all |R| planned sessions
still fit on every one of them (so any routing is feasible). Servers are taken in
order of amortised time, τ_j plus the worst client RTT spread over its blocks, and
each covers the most under-served window (least coverage summed over the window,
earliest on ties). Windows then move, one server at a time, to the start that most
lowers the planned sessions' total time (`improve_windows`; block counts stay, so the
caches still fit on any route). Every client then takes the shortest path over
(server, block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import PlacementError
from .fleet import Fleet
from .plan import Plan, StaticRouter, cache_capacity, range_bounds
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


IMPROVE_WORK = 2_000_000
"""Budget of `improve_windows` in (block x server x client) steps of the shortest-path
passes: ~14,000 window trials on a 5-server, 14-block fleet with 2 clients, ~3,000 on the
anchor, 28 on 100 servers with 10 clients and none on 1,000 servers with 100 (the rule's
windows stand where the budget ends)."""


def planned_time(fleet: Fleet, starts: np.ndarray, ends: np.ndarray) -> float:
    """Σ over the |R| planned sessions of their shortest-route request time (inf when a
    block is not covered): the objective of `Plan.objective` for these windows."""
    total = 0.0
    for c in range(fleet.num_clients):
        n = int(fleet.client_sessions[c])
        if n:
            total += n * shortest_route(fleet, c, starts, ends)[0]
    return total


def improve_windows(fleet: Fleet, ranges
                    ) -> tuple[tuple[tuple[int, int] | None, ...], int, float]:
    """Local search over window positions: each server holding blocks in turn (by index)
    moves its window to the start that lowers `planned_time` most; sweeps repeat until
    one changes nothing or IMPROVE_WORK is spent. Returns the ranges, the number of
    moves and the given ranges' `planned_time`. Block counts never change, so the
    conservative memory guarantee holds; the objective never rises."""
    L, clients = fleet.num_blocks, max(1, int(np.count_nonzero(fleet.client_sessions)))
    starts, ends = range_bounds(ranges)
    budget = IMPROVE_WORK // (L * fleet.num_servers * clients)
    before = best = planned_time(fleet, starts, ends)
    moves, changed = 0, True
    while changed and budget > 0:
        changed = False
        for j in np.flatnonzero(ends > starts):
            k, was = int(ends[j] - starts[j]), int(starts[j])
            here = was
            for start in range(L - k + 1):
                if start == was:
                    continue
                if budget <= 0:
                    break
                budget -= 1
                starts[j], ends[j] = start, start + k
                t = planned_time(fleet, starts, ends)
                if t < best * (1 - 1e-12):
                    best, here = t, start
            starts[j], ends[j] = here, here + k
            if here != was:
                moves, changed = moves + 1, True
    ranges = tuple((int(starts[i]), int(ends[i])) if r else None for i, r in enumerate(ranges))
    return ranges, moves, before


def greedy_placement(fleet: Fleet, improve: bool = True
                     ) -> tuple[tuple[tuple[int, int] | None, ...], dict]:
    """The greedy rule's ranges, their windows improved unless `improve` is False, and
    what the improvement did (the rule's own objective, the windows moved)."""
    ranges = greedy_ranges(fleet)
    if not improve:
        return ranges, {}
    ranges, moves, before = improve_windows(fleet, ranges)
    return ranges, {"paper_rule_objective_s": before, "window_moves": moves}


def client_routes(fleet: Fleet, ranges) -> tuple[tuple, ...]:
    """Each client's shortest route over the placement (one route, used by all its sessions)."""
    starts, ends = range_bounds(ranges)
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
    improve: bool = True
    """Move windows by `improve_windows` after the paper's rule (False: the rule alone)."""

    def plan(self, fleet: Fleet, seed: int) -> Plan:
        """Place by the greedy rule (and improve its windows), then route every client by
        shortest path."""
        ranges, info = greedy_placement(fleet, self.improve)
        routes = client_routes(fleet, ranges)
        return Plan(self.name, ranges, cache_capacity(fleet, ranges), routes,
                    StaticRouter(routes), info=info)
