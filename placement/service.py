"""The Placement gRPC service: `Place` plans a model over the farm's workers and inline servers.

The coordinator hosts it and hands it two callables, so that this package never
imports the coordinator: one listing the registered workers (`FarmWorker`), one told
of every plan made (the dashboard shows the latest). Bad input, and a plan that cannot
be made (a model that does not fit), answer INVALID_ARGUMENT naming the request field.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from metainf.v1 import farm_pb2, farm_pb2_grpc

from .cli_entry import place
from .errors import FleetError, PlacementError
from .farm import FarmWorker, request_field, request_fleet, worker_to_worker_s
from .fleet import fleet_from_dict

log = logging.getLogger(__name__)

FarmWorkers = Callable[[str], list[FarmWorker]]
"""Lists the farm's registered workers, with their block timing of the named model."""

OnPlan = Callable[[dict[str, Any]], None]
"""Told of each plan made: the `place` result with `created_at` and the request's summary."""


def _ranges(items: list[dict[str, Any]]) -> list[farm_pb2.BlockRange]:
    return [farm_pb2.BlockRange(server=r["server"], first_block=r["first_block"],
                                last_block=r["last_block"]) for r in items]


def plan_message(entry: dict[str, Any]) -> farm_pb2.PlanResult:
    """A plan entry of `place()` as a PlanResult."""
    if entry.get("status") == "failed":
        return farm_pb2.PlanResult(algorithm=entry["algorithm"], status="failed",
                                   error=entry.get("error", ""),
                                   join_orders=entry.get("join_orders", 0))
    return farm_pb2.PlanResult(
        algorithm=entry["algorithm"], status="ok", ranges=_ranges(entry["ranges"]),
        routes=[farm_pb2.ClientRoute(client=r["client"], hops=_ranges(r["hops"]),
                                     predicted_s_per_token=r["predicted_s_per_token"])
                for r in entry["routes"]],
        predicted_s_per_token=entry["predicted_s_per_token"] or 0.0,
        objective_s=entry["objective_s"], plan_s=entry["plan_s"],
        join_orders=entry.get("join_orders", 0),
        info_json=json.dumps(entry["info"]) if entry.get("info") else "")


def result_to_response(result: dict[str, Any]) -> farm_pb2.PlaceResponse:
    """A `place()` result (with `notes` and server `worker_id`s) as a PlaceResponse."""
    return farm_pb2.PlaceResponse(
        model=result["model"], blocks=result["blocks"],
        servers=[farm_pb2.PlacedServer(**s) for s in result["servers"]],
        plan=plan_message(result["plan"]), petals=plan_message(result["petals"]),
        notes=result.get("notes", []))


def _range_dicts(items) -> list[dict[str, Any]]:
    return [{"server": r.server, "first_block": r.first_block, "last_block": r.last_block}
            for r in items]


def plan_dict(message: farm_pb2.PlanResult) -> dict[str, Any]:
    """A PlanResult as the `place --json` plan entry."""
    out: dict[str, Any] = {"algorithm": message.algorithm, "status": message.status}
    if message.join_orders:
        out["join_orders"] = message.join_orders
    if message.status == "failed":
        out["error"] = message.error
        return out
    out.update(ranges=_range_dicts(message.ranges),
               routes=[{"client": r.client, "hops": _range_dicts(r.hops),
                        "predicted_s_per_token": r.predicted_s_per_token}
                       for r in message.routes],
               predicted_s_per_token=message.predicted_s_per_token,
               objective_s=message.objective_s, plan_s=message.plan_s)
    if message.info_json:
        out["info"] = json.loads(message.info_json)
    return out


def response_to_result(resp: farm_pb2.PlaceResponse) -> dict[str, Any]:
    """A PlaceResponse as the `metainf place --json` object (the local form's shape)."""
    return {"fleet": "farm", "model": resp.model, "blocks": resp.blocks,
            "servers": [{"name": s.name, "worker_id": s.worker_id, "memory_gb": s.memory_gb,
                         "tau_ms": s.tau_ms, "tau_prefill_ms": s.tau_prefill_ms,
                         "tau_estimated": s.tau_estimated, "region": s.region}
                        for s in resp.servers],
            "plan": plan_dict(resp.plan), "petals": plan_dict(resp.petals),
            "notes": list(resp.notes)}


def _notes(result: dict[str, Any], workers: list[FarmWorker], request) -> list[str]:
    """What the plan assumed that the caller should know."""
    notes = []
    estimated = [s["name"] for s in result["servers"] if s["tau_estimated"]]
    if estimated:
        notes.append("tau estimated from the hardware catalog (no block timing) for: "
                     + ", ".join(estimated))
    timed = [w.name for w in workers if w.tau_s]
    used = [n for n in timed if n not in estimated]
    if used:
        notes.append("tau measured by a block timing of their hardware class for: "
                     + ", ".join(used))
    if len(used) < len(timed):
        notes.append("block timings (16-bit, the catalog's block) not used: the request "
                     "changes the block's size (weight_bits or params_per_block)")
    if workers and not len(request.rtt.client_server_ms):
        notes.append("workers' RTTs: their reported RTT to the coordinator (clients without "
                     "a region sit there)")
    if len(workers) > 1 and not len(request.rtt.server_server_ms):
        pairs = [(a, b, worker_to_worker_s(a, b)) for i, a in enumerate(workers)
                 for b in workers[i + 1:]]
        measured = sum(1 for *_, r in pairs if r is not None and r[1])
        bounded = [f"{a.name}-{b.name}" for a, b, r in pairs if r is not None and not r[1]]
        notes.append(f"between workers: RTT measured echo to echo for {measured} of "
                     f"{len(pairs)} pairs" + (f"; the sum of both RTTs to the coordinator "
                                              f"(an upper bound) for {', '.join(bounded)}"
                                              if bounded else ""))
    return notes


def place_request(request: farm_pb2.PlaceRequest, farm: list[FarmWorker]) -> dict[str, Any]:
    """Plan a PlaceRequest over the farm's workers; FleetError names the request field."""
    data, workers = request_fleet(request, farm)
    try:
        fleet = fleet_from_dict(data)
        result = place(fleet, request.algorithm or "greedy")
    except FleetError as exc:
        raise FleetError(request_field(exc.field, workers), exc.message) from None
    ids = {w.name: w.worker_id for w in workers}
    for s in result["servers"]:
        s["worker_id"] = ids.get(s["name"], "")
    result["notes"] = _notes(result, workers, request)
    return result


class PlacementServicer(farm_pb2_grpc.PlacementServicer):
    """Implements metainf.v1.Placement over the coordinator's registered workers."""

    def __init__(self, farm_workers: FarmWorkers = lambda model: [],
                 on_plan: OnPlan | None = None):
        self.farm_workers = farm_workers
        self.on_plan = on_plan

    def Place(self, request, context):
        """Plan the request's algorithm and PETALS' rule; INVALID_ARGUMENT on bad input."""
        t0 = time.perf_counter()
        try:
            result = place_request(request, self.farm_workers(request.model.catalog))
        except PlacementError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.info("Place %s over %d servers with %s: %.4f s/token predicted (%.2f s)",
                 result["model"], len(result["servers"]), result["plan"]["algorithm"],
                 result["plan"]["predicted_s_per_token"] or 0.0, time.perf_counter() - t0)
        if self.on_plan is not None:
            try:
                self.on_plan({**result, "created_at": time.time()})
            except Exception:  # the answer matters more than its record
                log.exception("Place: could not record the plan")
        return result_to_response(result)
