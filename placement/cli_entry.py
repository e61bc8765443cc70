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


def server_facts(fleet: Fleet) -> list[dict[str, Any]]:
    """What a plan assumed about each server: memory (GB), τ and τᴵ (ms), estimated or not."""
    return [{"name": name, "memory_gb": float(fleet.memory_bytes[j]) / 1e9,
             "tau_ms": float(fleet.tau_s[j]) * 1e3,
             "tau_prefill_ms": float(fleet.tau_prefill_s[j]) * 1e3,
             "tau_estimated": bool(fleet.tau_estimated[j]), "region": fleet.server_regions[j]}
            for j, name in enumerate(fleet.server_names)]


def with_model(data: dict[str, Any], model: str) -> dict[str, Any]:
    """A parsed fleet file placing catalog model `model` instead of the file's.

    The file's model section stays whole when it names the same model; for another
    model only how blocks are stored (weight bits, overhead, cache bytes) carries over,
    not shape fields meant for the file's model.
    """
    section = data.get("model") if isinstance(data.get("model"), dict) else {}
    if model in (section.get("catalog"), section.get("name")):
        return data
    kept = {k: section[k] for k in ("weight_bits", "block_overhead", "cache_bytes_per_value")
            if k in section}
    return {**data, "model": {"catalog": model, **kept}}


def place(fleet: Fleet, algorithm: str = "greedy", join_orders: int | None = None
          ) -> dict[str, Any]:
    """`metainf place` / the `Place` RPC: one algorithm's plan and PETALS' side by side."""
    chosen = timed_plan(registry.get(algorithm), fleet, fleet.seed)
    out: dict[str, Any] = {"fleet": fleet.name, "model": fleet.shape.name,
                           "blocks": fleet.num_blocks, "servers": server_facts(fleet),
                           "plan": plan_dict(fleet, chosen)}
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
        out["petals"]["join_orders"] = join_orders or fleet.petals.join_orders
    out["plan"].setdefault("status", "ok")
    out["petals"].setdefault("status", "ok")
    return out


def _plan_lines(entry: dict[str, Any]) -> list[str]:
    """One plan for people: its predicted time, block ranges and routes."""
    name = entry["algorithm"] + (f" (median of {entry['join_orders']} join orders)"
                                 if entry.get("join_orders") else "")
    if entry.get("status") == "failed":
        return [f"{name}: failed: {entry.get('error')}"]
    lines = [f"{name}: predicted {entry['predicted_s_per_token']:.4f} s/token, planned in "
             f"{entry['plan_s']:.3f} s"]
    info = entry.get("info") or {}
    if "window_moves" in info and entry.get("objective_s") is not None:
        lines.append(f"  window search: {info['window_moves']} move(s), planned sessions' "
                     f"time {info['paper_rule_objective_s']:.2f} s by the paper's rule -> "
                     f"{entry['objective_s']:.2f} s")
    ranges = ", ".join(f"{r['server']} {r['first_block']}-{r['last_block']}"
                       for r in entry["ranges"])
    lines.append(f"  blocks: {ranges}")
    for route in entry["routes"]:
        hops = " -> ".join(f"{h['server']} [{h['first_block']}-{h['last_block']}]"
                           for h in route["hops"])
        lines.append(f"  {route['client']}: {hops} ({route['predicted_s_per_token']:.4f} "
                     "s/token)")
    return lines


def format_place(result: dict[str, Any]) -> str:
    """The `place` result for people: the servers assumed, the plan, PETALS' beside it."""
    lines = [f"{result['model']} ({result['blocks']} blocks) over "
             f"{len(result['servers'])} servers"]
    for s in result["servers"]:
        mark = " (estimated)" if s["tau_estimated"] else ""
        lines.append(f"  {s['name']:<16} {s['memory_gb']:>8.2f} GB  tau {s['tau_ms']:.3f} ms"
                     f"{mark}  prefill {s['tau_prefill_ms']:.3f} ms  region {s['region']}")
    lines += _plan_lines(result["plan"]) + _plan_lines(result["petals"])
    plan, petals = result["plan"], result["petals"]
    if plan.get("predicted_s_per_token") and petals.get("predicted_s_per_token"):
        cut = 1.0 - plan["predicted_s_per_token"] / petals["predicted_s_per_token"]
        lines.append(f"{plan['algorithm']} vs petals: predicted time per token "
                     f"{_cut_words(cut)} (no queueing, see `place simulate`)")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


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
            lines.append(f"{name}: mean time per token {_cut_words(cut['mean_s_per_token'])}, "
                         f"service time alone {_cut_words(cut['mean_service_s_per_token'])}")
    return "\n".join(lines)


def _cut_words(cut: float) -> str:
    """A cut against PETALS in words: "cut by 49.2%" or "12.0% slower than PETALS"."""
    return f"cut by {cut:.1%}" if cut >= 0 else f"{-cut:.1%} slower than PETALS"
