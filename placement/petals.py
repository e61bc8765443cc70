"""PETALS' own rule, the baseline: servers join one by one and route by Dijkstra.

Placement (petals/server/block_selection.py): a joining server takes the window whose
sorted per-block throughputs are lexicographically least (the least-served blocks),
its block count set by memory after PETALS' default reservations (an autograd buffer
of 2 GiB scaled by d_model / 14336, and an attention cache of `attn_cache_tokens` per
block). Routing (petals/client/routing/sequence_manager.py): shortest path where a hop
costs RTT/2 + a fixed overhead (+ an allocation penalty where the server lacks cache),
a block costs 1/throughput, hops switch only at the end of a server's span, and
server-to-server hops use server-to-server RTTs. Routes are made per arriving request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import PlacementError
from .fleet import Fleet
from .perf import Hop, Route
from .plan import Plan, SimState, range_bounds

GIB = 1024**3
MAX_DELAY_S = 5.0
"""PETALS caps one edge's network delay at 5 s."""


def petals_blocks(fleet: Fleet) -> np.ndarray:
    """Blocks each server serves under PETALS' memory rule (0: it cannot join)."""
    shape = fleet.shape
    autograd = 2 * GIB * shape.d_model / 14336
    per_block = shape.block_bytes + shape.cache_bytes_per_block(fleet.petals.attn_cache_tokens)
    m = np.floor((fleet.memory_bytes - autograd) / per_block)
    return np.clip(m, 0, fleet.num_blocks).astype(int)


def choose_best_start(throughputs: np.ndarray, k: int) -> int:
    """PETALS' `_choose_best_start`: the window whose sorted throughputs are least."""
    windows = np.sort(sliding_window_view(throughputs, k), axis=1)
    return int(np.lexsort(windows.T[::-1])[0])


def join(fleet: Fleet, order: np.ndarray) -> tuple[tuple[int, int] | None, ...]:
    """Block ranges after servers join in `order`, each taking its best window."""
    m = petals_blocks(fleet)
    throughputs = np.zeros(fleet.num_blocks)
    ranges: list[tuple[int, int] | None] = [None] * fleet.num_servers
    for j in order:
        k = int(m[j])
        if k == 0:
            continue
        start = choose_best_start(throughputs, k)
        throughputs[start:start + k] += fleet.petals_throughput[j]
        ranges[j] = (start, start + k)
    if (throughputs <= 0).any():
        missing = int(np.flatnonzero(throughputs <= 0)[0])
        raise PlacementError(f"servers.memory_gb: under PETALS' rule no server holds block "
                             f"{missing} (PETALS reserves cache and autograd memory)")
    return tuple(ranges)


def petals_route(fleet: Fleet, client: int, ranges, penalty: np.ndarray) -> Route:
    """PETALS' min-latency route for one request, with `penalty` added on entering a server."""
    L, J = fleet.num_blocks, fleet.num_servers
    placed = np.asarray([r is not None for r in ranges])
    starts, ends = range_bounds(ranges)
    ovh = fleet.petals.overhead_s
    half_cs = np.minimum(fleet.rtt_cs[client] / 2, MAX_DELAY_S)
    half_ss = np.minimum(fleet.rtt_ss / 2, MAX_DELAY_S)
    compute = 1.0 / fleet.petals_throughput
    inf = np.inf
    cur = np.full(J, inf)
    parent = np.full((L, J), -2, int)
    for b in range(L):
        contains = placed & (starts <= b) & (b < ends)
        if b == 0:
            cand = half_cs + ovh + penalty
            src = np.full(J, -1)
        else:
            ending = np.flatnonzero(placed & (ends == b) & np.isfinite(cur))
            if len(ending):
                costs = cur[ending][:, None] + half_ss[ending] + ovh + penalty[None, :]
                cand = costs.min(axis=0)
                src = ending[costs.argmin(axis=0)]
            else:
                cand = np.full(J, inf)
                src = np.full(J, -2)
        take = contains & (cand < cur)
        parent[b] = np.where(take, src, -2)
        cur = np.where(contains, np.where(take, cand, cur) + compute, inf)
    final = np.where(placed & (ends == L), cur + half_cs, inf)
    j = int(np.argmin(final))
    if not np.isfinite(final[j]):
        raise PlacementError("PETALS found no route over all blocks")
    hops: list[Hop] = []
    end = L
    while True:
        k = end - 1
        while parent[k, j] == -2:
            k -= 1
        hops.append(Hop(j, k, end))
        if parent[k, j] == -1:
            break
        j, end = int(parent[k, j]), k
    return tuple(reversed(hops))


@dataclass(frozen=True)
class PetalsRouter:
    """PETALS' client: a fresh min-latency route per request, penalising servers short of cache."""

    ranges: tuple[tuple[int, int] | None, ...]

    def routes(self, fleet: Fleet, client: int, state: SimState) -> tuple[Route, ...]:
        """The route PETALS picks now (alloc penalty where a span's cache does not fit)."""
        span = np.asarray([(r[1] - r[0]) if r else 0 for r in self.ranges], float)
        short = state.free < span * fleet.cache_bytes
        penalty = np.where(short, fleet.petals.alloc_delay_s, 0.0)
        return (petals_route(fleet, client, self.ranges, penalty),)


@dataclass(frozen=True)
class PetalsPlanner:
    """PETALS' placement for one seeded join order, and its per-request routing."""

    name: str = "petals"

    def plan(self, fleet: Fleet, seed: int) -> Plan:
        """Join servers in a random order drawn from `seed`; route each client as PETALS does."""
        order = np.random.default_rng(seed).permutation(fleet.num_servers)
        ranges = join(fleet, order)
        zero = np.zeros(fleet.num_servers)
        routes = tuple((petals_route(fleet, c, ranges, zero),)
                       for c in range(fleet.num_clients))
        span = np.asarray([(r[1] - r[0]) if r else 0 for r in ranges], float)
        pool = span * fleet.shape.cache_bytes_per_block(fleet.petals.attn_cache_tokens)
        return Plan(self.name, ranges, pool, routes, PetalsRouter(ranges),
                    info={"join_order": [fleet.server_names[j] for j in order]})
