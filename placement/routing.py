"""Shortest-path routing over the (server, block) graph, with the model's own costs.

Node (j, b) means "on server j, blocks up to b done". Entering server j costs the
whole request's RTT there (l_out round trips) plus any extra per-hop cost (the online
router adds its wait); each block costs τᴵ_j + (l_out - 1)·τ_j. The graph is a DAG in
block order, so Dijkstra reduces to one pass over the blocks, vectorised over servers.
"""

from __future__ import annotations

import numpy as np

from .fleet import Fleet
from .perf import Hop, Route, hop_costs


def shortest_route(fleet: Fleet, client: int, starts: np.ndarray, ends: np.ndarray,
                   hop_extra: np.ndarray | None = None,
                   allowed: np.ndarray | None = None) -> tuple[float, Route | None]:
    """(request seconds, route) of the cheapest chain over blocks 0..L-1; (inf, None) if none."""
    per_hop, per_block = hop_costs(fleet, client)
    if hop_extra is not None:
        per_hop = per_hop + hop_extra
    return _dag_shortest(fleet.num_blocks, starts, ends, per_hop, per_block, allowed)


def _dag_shortest(num_blocks: int, starts: np.ndarray, ends: np.ndarray, per_hop: np.ndarray,
                  per_block: np.ndarray, allowed: np.ndarray | None
                  ) -> tuple[float, Route | None]:
    """One pass over blocks: boundary costs B[b] and in-server costs, then backtracking."""
    inf = np.inf
    n = len(starts)
    ok = np.ones(n, bool) if allowed is None else np.asarray(allowed, bool)
    boundary = np.full(num_blocks + 1, inf)
    boundary[0] = 0.0
    best = np.zeros(num_blocks + 1, int)
    entered = np.zeros((num_blocks, n), bool)
    inside = np.full(n, inf)
    for b in range(num_blocks):
        hosts = ok & (starts <= b) & (b < ends)
        enter = boundary[b] + per_hop
        take = enter < inside
        entered[b] = take
        inside = np.where(hosts, np.where(take, enter, inside) + per_block, inf)
        j = int(np.argmin(inside))
        boundary[b + 1] = inside[j]
        best[b + 1] = j
    if not np.isfinite(boundary[num_blocks]):
        return inf, None
    hops: list[Hop] = []
    end = num_blocks
    while end > 0:
        j = int(best[end])
        k = end - 1
        while not entered[k, j]:
            k -= 1
        hops.append(Hop(j, k, end))
        end = k
    return float(boundary[num_blocks]), tuple(reversed(hops))
