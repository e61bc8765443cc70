"""The performance model: time of a request over a route, and the memory it holds.

A route is a chain of hops; hop (j, a, b) runs blocks a..b-1 (0-based) on server j.
Per generated token a hop costs the client–server RTT plus k_j·τ_j (k_j = b - a); the
prefill step pays RTT + k_j·τᴵ_j once and yields the first token, then decoding repeats
the per-token cost for each of the l_out - 1 tokens after it. A session holds
k_j · s_c bytes of attention cache on server j for its whole lifetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .fleet import Fleet


class Hop(NamedTuple):
    """Blocks start..end-1 (0-based, end exclusive) processed on server `server`."""

    server: int
    start: int
    end: int

    @property
    def blocks(self) -> int:
        """k_j: how many blocks this hop runs."""
        return self.end - self.start


Route = tuple[Hop, ...]
"""A chain of hops covering blocks 0..L-1 in order."""


def covers_in_order(route: Sequence[Hop], num_blocks: int) -> bool:
    """Whether the hops run blocks 0..num_blocks-1 exactly once, in order."""
    at = 0
    for hop in route:
        if hop.start != at or hop.end <= hop.start:
            return False
        at = hop.end
    return at == num_blocks


def token_time(fleet: Fleet, client: int, route: Sequence[Hop]) -> float:
    """Seconds per decoded token: Σ over hops of RTT(client, j) + k_j·τ_j."""
    return float(sum(fleet.rtt_cs[client, h.server] + h.blocks * fleet.tau_s[h.server]
                     for h in route))


def prefill_time(fleet: Fleet, client: int, route: Sequence[Hop]) -> float:
    """Seconds of the prefill step: Σ over hops of RTT(client, j) + k_j·τᴵ_j."""
    return float(sum(fleet.rtt_cs[client, h.server] + h.blocks * fleet.tau_prefill_s[h.server]
                     for h in route))


def request_time(fleet: Fleet, client: int, route: Sequence[Hop]) -> float:
    """Seconds from a request's start to its last token: prefill + (l_out - 1) decodes."""
    return prefill_time(fleet, client, route) + (fleet.load.l_out - 1) * token_time(
        fleet, client, route)


def per_token(fleet: Fleet, client: int, route: Sequence[Hop]) -> float:
    """A request's time divided by its l_out tokens (no queueing)."""
    return request_time(fleet, client, route) / fleet.load.l_out


def cache_need(fleet: Fleet, route: Sequence[Hop]) -> dict[int, float]:
    """Bytes of attention cache one session on this route holds, per server."""
    need: dict[int, float] = {}
    for h in route:
        need[h.server] = need.get(h.server, 0.0) + h.blocks * fleet.cache_bytes
    return need


def hop_costs(fleet: Fleet, client: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-hop, per-block) seconds of a whole request on each server, for routing."""
    l_out = fleet.load.l_out
    return fleet.rtt_cs[client] * l_out, fleet.tau_prefill_s + (l_out - 1) * fleet.tau_s
