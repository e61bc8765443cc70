"""Fleets shared by the placement tests: the shipped anchor and a small hand-made one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = ROOT / "examples" / "place" / "anchor.yaml"


def toy_dict(**load: Any) -> dict[str, Any]:
    """A 6-block model over 4 servers in two regions, 2 clients (fast to plan and solve)."""
    return {
        "name": "toy",
        "seed": 3,
        "model": {"name": "toy", "num_blocks": 6, "d_model": 1024, "n_heads": 8},
        "servers": [
            {"name": "near-fast", "memory_gb": 0.12, "tau_ms": 2, "region": "x"},
            {"name": "near-slow", "memory_gb": 0.09, "tau_ms": 9, "region": "x"},
            {"name": "far-fast", "memory_gb": 0.12, "tau_ms": 2, "region": "y"},
            {"name": "far-slow", "memory_gb": 0.07, "tau_ms": 6, "region": "y"},
        ],
        "clients": [{"name": "cx", "region": "x"}, {"name": "cy", "region": "y"}],
        "rtt": {"client_server_extra_ms": 5,
                "regions": [{"a": "x", "b": "x", "ms": [1, 5]},
                            {"a": "x", "b": "y", "ms": [60, 90]},
                            {"a": "y", "b": "y", "ms": 3}]},
        "load": {"sessions": 2, "l_in": 16, "l_out": 32, "arrival_rate": 0.5,
                 "requests": 40, **load},
        "petals": {"join_orders": 5},
        "milp": {"time_limit_s": 30},
    }
