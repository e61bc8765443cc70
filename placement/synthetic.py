"""Synthetic fleets shaped like the anchor, for benchmarks and tests.

Servers are the anchor's two kinds (a MIG 1g slice: 9.5 GB, τ = 15 ms; an A100 80 GB:
79.14 GB, τ = 15/7 ms, PETALS throughput 770.96 and a seventh of it), drawn 7 : 2;
servers and clients sit in random regions, RTT 0–5 ms within a region and 100–200 ms
across, plus 25 ms of serialisation on client hops; BLOOM-176B in NF4. `scaled_anchor`
keeps those ratios on a model cut to fewer blocks (memory scaled alike) so that the
exact MILP finishes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fleet import Fleet, fleet_from_dict

KINDS = (
    {"name": "mig", "memory_gb": 9.5, "tau_ms": 15.0, "petals_throughput": 770.96 / 7},
    {"name": "a100", "memory_gb": 79.14, "tau_ms": 15.0 / 7, "petals_throughput": 770.96},
)
"""The anchor's server kinds."""

MODEL = {"catalog": "bloom-176b", "params_per_block": 2.466e9, "weight_bits": 4.25,
         "block_overhead": 0.01, "cache_bytes_per_value": 2}
"""The anchor's model: BLOOM-176B, NF4, 1 % block overhead, 16-bit caches."""


def _regions_table(regions: list[str]) -> list[dict[str, Any]]:
    """0–5 ms within a region, 100–200 ms across."""
    table = []
    for i, a in enumerate(regions):
        for b in regions[i:]:
            table.append({"a": a, "b": b, "ms": [0, 5] if a == b else [100, 200]})
    return table


def fleet_dict(n_servers: int, n_clients: int, seed: int, num_blocks: int = 70,
               sessions_per_client: int = 3, n_regions: int | None = None) -> dict[str, Any]:
    """A fleet file's content: anchor-like servers and clients in random regions."""
    rng = np.random.default_rng(seed)
    n_regions = n_regions or max(2, n_servers // 10)
    regions = [f"r{k}" for k in range(n_regions)]
    scale = num_blocks / 70
    kinds = rng.choice(len(KINDS), size=n_servers, p=[7 / 9, 2 / 9])
    if not (kinds == 1).any():
        kinds[0] = 1
    servers = []
    for j, k in enumerate(kinds):
        kind = KINDS[int(k)]
        servers.append({"name": f"{kind['name']}-{j}", "memory_gb": kind["memory_gb"] * scale,
                        "tau_ms": kind["tau_ms"], "petals_throughput": kind["petals_throughput"],
                        "region": str(rng.choice(regions))})
    clients = [{"name": f"client-{c}", "region": str(rng.choice(regions))}
               for c in range(n_clients)]
    model = dict(MODEL)
    if num_blocks != 70:
        model["num_blocks"] = num_blocks
    return {
        "name": f"synthetic-{n_servers}x{n_clients}-s{seed}",
        "seed": seed,
        "model": model,
        "servers": servers,
        "clients": clients,
        "rtt": {"client_server_extra_ms": 25, "regions": _regions_table(regions)},
        "load": {"sessions": sessions_per_client * n_clients, "l_in": 20, "l_out": 80,
                 "arrival_rate": 0.1, "requests": 100},
        "petals": {"overhead_ms": 18, "join_orders": 10},
    }


def random_fleet(n_servers: int, n_clients: int, seed: int, **kwargs: Any) -> Fleet:
    """A resolved anchor-like fleet of `n_servers` servers and `n_clients` clients."""
    return fleet_from_dict(fleet_dict(n_servers, n_clients, seed, **kwargs))


def scaled_anchor(seed: int, num_blocks: int = 14, n_servers: int = 5,
                  n_clients: int = 1) -> Fleet:
    """A small anchor-like fleet (model cut to `num_blocks`, memory alike) for the MILP."""
    return random_fleet(n_servers, n_clients, seed, num_blocks=num_blocks, n_regions=2)
