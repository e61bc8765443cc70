"""What `metainf place` and the `Place` RPC call: pure functions returning JSON-ready dicts.

`place_simulate(fleet_path, algorithms)` is `metainf place simulate --fleet FILE --json`:
one object whose `plans` has an entry per algorithm with at least `algorithm`,
`mean_s_per_token`, `p50_s_per_token`, `p99_s_per_token`, `throughput_tok_s` and
`plan_s`; PETALS' figures are medians over its join orders (`join_orders` says how
many). `place(fleet, algorithm)` is one plan with PETALS' side by side. Block numbers
in the output are 1-based and inclusive (blocks 1..L). Bad input raises FleetError.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .base import timed_plan
from .errors import PlacementError
from .fleet import Fleet, load_fleet
from .perf import Route, per_token
from .plan import Plan
from .simulate import simulate

SIM_KEYS = ("mean_s_per_token", "p50_s_per_token", "p99_s_per_token", "throughput_tok_s",
            "mean_service_s_per_token", "mean_queue_s", "p99_queue_s", "mean_hops")
"""Simulator figures carried into each plan entry."""


def petals_seed(fleet: Fleet, k: int) -> int:
    """Seed of PETALS' k-th join order (derived from the fleet's seed)."""
    return fleet.seed * 100_003 + k


def route_dict(fleet: Fleet, client: int, route: Route) -> dict[str, Any]:
    """A route as JSON: hops with 1-based inclusive blocks, and its time per token."""
    return {"client": fleet.client_names[client],
            "hops": [{"server": fleet.server_names[h.server], "first_block": h.start + 1,
                      "last_block": h.end} for h in route],
            "predicted_s_per_token": per_token(fleet, client, route)}


def plan_dict(fleet: Fleet, plan: Plan) -> dict[str, Any]:
    """A plan as JSON: block range per server, routes per client, predicted time per token."""
    ranges = [{"server": fleet.server_names[j], "first_block": r[0] + 1, "last_block": r[1]}
              for j, r in enumerate(plan.ranges) if r is not None]
    routes = [route_dict(fleet, c, rs[0]) for c, rs in enumerate(plan.routes) if rs]
    weights = [float(fleet.client_sessions[c]) or 1.0 for c, rs in enumerate(plan.routes) if rs]
    predicted = float(np.average([r["predicted_s_per_token"] for r in routes],
                                 weights=weights)) if routes else None
    return {"algorithm": plan.algorithm, "ranges": ranges, "routes": routes,
            "predicted_s_per_token": predicted,
            "objective_s": plan.objective(fleet), "plan_s": plan.plan_s,
            **({"info": plan.info} if plan.info else {})}


def _entry(fleet: Fleet, plan: Plan, seed: int) -> dict[str, Any]:
    """Plan plus simulated figures."""
    summary = simulate(plan, fleet, seed=seed).summary()
    entry = plan_dict(fleet, plan)
    entry.update({k: summary[k] for k in SIM_KEYS if k in summary})
    entry.update(served=summary.get("served", 0), failed=summary.get("failed", 0),
                 status="ok")
    return entry


def _failed(name: str, exc: Exception) -> dict[str, Any]:
    """An algorithm that could not plan, kept as a row."""
    return {"algorithm": name, "status": "failed", "error": str(exc)}


def petals_entry(fleet: Fleet, join_orders: int | None = None, seed: int | None = None
                 ) -> dict[str, Any]:
    """PETALS over `join_orders` seeded join orders: median figures, the median order's plan."""
    n = join_orders or fleet.petals.join_orders
    seed = fleet.seed if seed is None else seed
    planner = registry.get("petals")
    entries = [_entry(fleet, timed_plan(planner, fleet, petals_seed(fleet, k)), seed)
               for k in range(n)]
    means = [e["mean_s_per_token"] for e in entries]
    order = int(np.argsort(means)[len(means) // 2])
    out = dict(entries[order])
    for key in (*SIM_KEYS, "plan_s", "predicted_s_per_token", "objective_s"):
        values = [e[key] for e in entries if e.get(key) is not None]
        if values:
            out[key] = float(statistics.median(values))
    out["join_orders"] = n
    out["mean_s_per_token_range"] = [min(means), max(means)]
    out["shown_join_order"] = order
    return out


def run_algorithm(fleet: Fleet, name: str, seed: int | None = None,
                  join_orders: int | None = None) -> dict[str, Any]:
    """Plan with one algorithm and simulate it; a failed plan becomes a row with `error`."""
    seed = fleet.seed if seed is None else seed
    try:
        if name == "petals":
            return petals_entry(fleet, join_orders, seed)
        return _entry(fleet, timed_plan(registry.get(name), fleet, seed), seed)
    except PlacementError as exc:
        return _failed(name, exc)


def _cut(plans: dict[str, dict[str, Any]], name: str, key: str) -> float | None:
    """1 - name's figure / PETALS' figure (the fraction cut), when both exist."""
    a, b = plans.get(name, {}).get(key), plans.get("petals", {}).get(key)
    return None if a is None or not b else 1.0 - a / b


def simulate_fleet(fleet: Fleet, algorithms: Sequence[str] | None = None,
                   join_orders: int | None = None) -> dict[str, Any]:
    """Plan and simulate each algorithm on a resolved fleet (all registered by default)."""
    names = list(algorithms) if algorithms else registry.names()
    for name in names:
        registry.get(name)  # unknown names fail before any work
    plans = [run_algorithm(fleet, name, join_orders=join_orders) for name in names]
    by_name = {p["algorithm"]: p for p in plans}
    cuts = {f"{name}_vs_petals": {"mean_s_per_token": _cut(by_name, name, "mean_s_per_token"),
                                  "mean_service_s_per_token": _cut(
                                      by_name, name, "mean_service_s_per_token")}
            for name in names if name != "petals" and "petals" in by_name}
    return {
        "fleet": fleet.name, "model": fleet.shape.name, "blocks": fleet.num_blocks,
        "servers": fleet.num_servers, "clients": fleet.num_clients,
        "load": {"sessions": fleet.load.sessions, "l_in": fleet.load.l_in,
                 "l_out": fleet.load.l_out, "arrival_rate": fleet.load.arrival_rate,
                 "requests": fleet.load.requests},
        "seed": fleet.seed,
        "tau_estimated": [n for n, e in zip(fleet.server_names, fleet.tau_estimated) if e],
        "plans": plans,
        "cuts": cuts,
    }


def place_simulate(fleet_path: str | Path, algorithms: Sequence[str] | None = None,
                   join_orders: int | None = None) -> dict[str, Any]:
    """`metainf place simulate --fleet FILE --json`: every named algorithm planned and simulated."""
    result = simulate_fleet(load_fleet(fleet_path), algorithms, join_orders)
    result["fleet_file"] = str(fleet_path)
    return result


def place(fleet: Fleet, algorithm: str = "greedy", join_orders: int | None = None
          ) -> dict[str, Any]:
    """`metainf place` / the `Place` RPC: one algorithm's plan and PETALS' side by side."""
    chosen = timed_plan(registry.get(algorithm), fleet, fleet.seed)
    out: dict[str, Any] = {"fleet": fleet.name, "model": fleet.shape.name,
                           "blocks": fleet.num_blocks, "plan": plan_dict(fleet, chosen)}
    try:
        n = join_orders or fleet.petals.join_orders
        planner = registry.get("petals")
        plans = [timed_plan(planner, fleet, petals_seed(fleet, k)) for k in range(n)]
        predicted = [plan_dict(fleet, p)["predicted_s_per_token"] for p in plans]
        k = int(np.argsort(predicted)[len(predicted) // 2])
        out["petals"] = plan_dict(fleet, plans[k])
        out["petals"]["join_orders"] = n
    except PlacementError as exc:
        out["petals"] = _failed("petals", exc)
    return out


def format_table(result: dict[str, Any]) -> str:
    """The `place simulate` result as a fixed-width table for people."""
    head = (f"{'algorithm':<10} {'mean s/tok':>10} {'p50':>8} {'p99':>8} {'service':>8} "
            f"{'queue s':>8} {'tok/s':>7} {'plan s':>8}")
    lines = [f"{result['fleet']}: {result['model']} ({result['blocks']} blocks) over "
             f"{result['servers']} servers, {result['clients']} clients", head]
    for p in result["plans"]:
        if p.get("status") != "ok":
            lines.append(f"{p['algorithm']:<10} failed: {p.get('error')}")
            continue
        name = p["algorithm"] + (f" (median of {p['join_orders']})" if "join_orders" in p
                                 else "")
        lines.append(f"{name:<10} {p['mean_s_per_token']:>10.3f} {p['p50_s_per_token']:>8.3f} "
                     f"{p['p99_s_per_token']:>8.3f} {p['mean_service_s_per_token']:>8.3f} "
                     f"{p['mean_queue_s']:>8.1f} {p['throughput_tok_s']:>7.2f} "
                     f"{p['plan_s']:>8.3f}")
    for name, cut in result.get("cuts", {}).items():
        if cut["mean_s_per_token"] is not None:
            lines.append(f"{name}: mean time per token cut by {cut['mean_s_per_token']:.1%}, "
                         f"service time alone by {cut['mean_service_s_per_token']:.1%} "
                         "(negative: slower than PETALS)")
    return "\n".join(lines)
