"""The fleet of a `Place` request: registered workers and inline servers as a fleet dict.

The request mirrors the fleet file (docs/placement.md), so it becomes the same dict and
is validated by the same code (`fleet.fleet_from_dict`); only the registered workers
are added, as servers described by their hardware profile:

- memory: the accelerators' (memory x count) on a GPU worker, its RAM share on a CPU
  worker (the profile's GiB, converted to GB);
- τ: from the block timing of the worker's hardware class where one was measured (and
  the request stores blocks as it ran them: the catalog shape at 16 bits), else
  estimated from the hardware catalog (bandwidth and peak of the accelerator, or the
  CPU's measured bandwidth and peak from its clock and ISA) and marked estimated;
- RTT: each worker sits in its own region ``worker:NAME``; its reported RTT to the
  coordinator is its RTT to region ``coordinator`` (where clients and inline servers
  without a region are). Two workers are apart by the RTT one measured to the other's
  echo service (the faster direction where both did); where neither did, by the sum of
  their RTTs to the coordinator, an upper bound. Explicit matrices or region entries in
  the request win.

Errors name the request's fields: ``servers.K`` of the fleet dict becomes
``workers.NAME`` for a registered worker and ``servers.(K - workers)`` for an inline one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from metainf.hardware_catalog import facts_from_profile

from .errors import FleetError

GIB_IN_GB = 1024**3 / 1e9
"""GB (1e9 bytes) in one GiB: profiles give memory in GiB, fleets in GB."""

COORDINATOR_REGION = "coordinator"
"""Region of clients and inline servers that name none: next to the coordinator."""

DEFAULT_JOIN_ORDERS = 100
DEFAULT_MILP_LIMIT_S = 10.0
MAX_MILP_LIMIT_S = 120.0
MAX_JOIN_ORDERS = 1000


@dataclass(frozen=True)
class FarmWorker:
    """A registered worker as the coordinator knows it, for planning over it."""

    worker_id: str
    name: str
    profile: dict[str, Any]
    alive: bool = True
    rtt_s: float | None = None
    """Its last reported RTT to the coordinator (None: none reported)."""
    peer_rtt_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """Its measured RTTs to other workers' echo services, by their worker id."""
    tau_s: float | None = None
    """Measured decode time per block per token, where a block timing exists."""
    tau_prefill_s: float | None = None
    """Measured prefill time per block of `timing_l_in` tokens, where a timing exists."""
    timing_l_in: int = 0
    """Tokens of the measured prefill."""

    @property
    def region(self) -> str:
        """The worker's own region label for RTT tables."""
        return f"worker:{self.name}"


def pick_workers(requested: list[str], farm: list[FarmWorker], inline: int
                 ) -> list[FarmWorker]:
    """Workers named (by name or id) in order; none named and no inline servers: all alive."""
    if not requested:
        if inline:
            return []
        alive = [w for w in farm if w.alive]
        if not alive:
            raise FleetError("workers", "no registered worker is alive; name workers or "
                                        "describe servers inline")
        return alive
    by_key = {w.worker_id: w for w in farm}
    for w in farm:
        by_key.setdefault(w.name, w)
    picked = []
    for i, key in enumerate(requested):
        if key not in by_key:
            known = ", ".join(sorted({w.name for w in farm})) or "none registered"
            raise FleetError(f"workers.{i}", f"unknown worker {key!r}; known: {known}")
        if by_key[key] in picked:
            raise FleetError(f"workers.{i}", f"worker {key!r} named twice")
        picked.append(by_key[key])
    return picked


def _unique_names(workers: list[FarmWorker]) -> list[FarmWorker]:
    """The workers, renamed name@id where two share a name (server names must be unique)."""
    names = [w.name for w in workers]
    return [w if names.count(w.name) == 1 else dataclasses.replace(
        w, name=f"{w.name}@{w.worker_id}") for w in workers]


def worker_server(w: FarmWorker, l_in: int, measured_ok: bool = True) -> dict[str, Any]:
    """A worker as a fleet-file server: memory, τ (measured) or the facts to estimate it.

    A measured τ is used when `measured_ok` (the request stores blocks as the timing ran
    them: the catalog's shape at 16 bits); the prefill of `l_in` tokens scales the timed
    prefill by tokens, never below one decode step.
    """
    p = w.profile
    facts = facts_from_profile(p)
    if p.get("kind") == "gpu":
        gib = float(p.get("accelerator_memory_gb") or 0) * int(p.get("accelerator_count") or 1)
    else:
        gib = float(p.get("ram_gb") or 0)
    memory_gb = gib * GIB_IN_GB or (facts.memory_gb or 0) * facts.count
    if memory_gb <= 0:
        raise FleetError(f"workers.{w.name}", "its profile gives no memory to place blocks in")
    server: dict[str, Any] = {"name": w.name, "memory_gb": memory_gb, "region": w.region}
    measured = bool(w.tau_s) and measured_ok
    if measured:
        server["tau_ms"] = w.tau_s * 1e3
        if w.tau_prefill_s and w.timing_l_in:
            server["tau_prefill_ms"] = max(w.tau_s, w.tau_prefill_s * l_in / w.timing_l_in) * 1e3
    if facts.bandwidth_tbs:
        server["bandwidth_tbs"] = facts.bandwidth_tbs
        tflops = facts.bf16_tflops or facts.fp16_tflops
        if tflops:
            server["tflops"] = tflops
    elif not measured:
        what = p.get("accelerator") or p.get("cpu_model") or "its hardware"
        raise FleetError(f"workers.{w.name}",
                         f"no block timing and no memory bandwidth known for {what} to "
                         "estimate tau from; describe it as an inline server with tau_ms")
    return server


def _nonzero(message: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Fields of a message that are set (proto3 zero means "not given")."""
    return {n: getattr(message, n) for n in names if getattr(message, n)}


def _optional(message: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Optional fields of a message that are present."""
    return {n: getattr(message, n) for n in names if message.HasField(n)}


def worker_to_worker_s(a: FarmWorker, b: FarmWorker) -> tuple[float, bool] | None:
    """(RTT between two workers in seconds, measured?): the faster direction either
    measured to the other's echo service, else the sum of their RTTs to the coordinator
    (an upper bound); None when neither is known."""
    measured = [r for r in (a.peer_rtt_s.get(b.worker_id), b.peer_rtt_s.get(a.worker_id))
                if r]
    if measured:
        return min(measured), True
    if a.rtt_s is not None and b.rtt_s is not None:
        return a.rtt_s + b.rtt_s, False
    return None


def _rtt(request: Any, workers: list[FarmWorker]) -> dict[str, Any]:
    """The `rtt` section: the request's, after the workers' RTTs to the coordinator and to
    each other."""
    r = request.rtt
    given = [{"a": e.a, "b": e.b, "ms": [e.ms, e.ms_max] if e.HasField("ms_max") else e.ms}
             for e in r.regions]
    matrices = {k: [list(row.ms) for row in getattr(r, k)]
                for k in ("client_server_ms", "server_server_ms") if len(getattr(r, k))}
    mentioned = {x for e in r.regions for x in (e.a, e.b)}
    generated = []
    for i, w in enumerate(workers):
        if w.rtt_s is None:
            if "client_server_ms" not in matrices and w.region not in mentioned:
                raise FleetError(f"workers.{w.name}",
                                 "no RTT reported yet (a worker reports one with its "
                                 "heartbeats); give rtt.client_server_ms or rtt.regions for "
                                 f"region {w.region!r}")
            continue
        generated.append({"a": COORDINATOR_REGION, "b": w.region, "ms": w.rtt_s * 1e3})
        for v in workers[i + 1:]:
            between = worker_to_worker_s(w, v)
            if between is not None:
                generated.append({"a": w.region, "b": v.region, "ms": between[0] * 1e3})
    out: dict[str, Any] = {"regions": generated + given, **matrices}
    if r.client_server_extra_ms:
        out["client_server_extra_ms"] = r.client_server_extra_ms
    return out


SERVER_FIELDS = ("count", "memory_gb", "tau_ms", "tau_prefill_ms", "hardware", "bandwidth_tbs",
                 "tflops", "petals_throughput")
MODEL_FIELDS = ("params_per_block", "weight_bits", "block_overhead", "cache_bytes_per_value")


def request_fleet(request: Any, farm: list[FarmWorker]) -> tuple[dict[str, Any],
                                                                  list[FarmWorker]]:
    """(fleet dict, workers placed) for a PlaceRequest over the farm's registered workers."""
    if not request.model.catalog:
        raise FleetError("model.catalog", "required: a catalog model name such as bloom-176b")
    if not request.HasField("load"):
        raise FleetError("load.sessions", "required (with load.l_in and load.l_out)")
    if request.milp_time_limit_s < 0 or request.milp_time_limit_s > MAX_MILP_LIMIT_S:
        raise FleetError("milp_time_limit_s", f"must be in (0, {MAX_MILP_LIMIT_S:g}] s, or 0 "
                                              f"for {DEFAULT_MILP_LIMIT_S:g} s "
                                              f"(got {request.milp_time_limit_s})")
    if not 0 <= request.petals_join_orders <= MAX_JOIN_ORDERS:
        raise FleetError("petals_join_orders", f"must be between 0 and {MAX_JOIN_ORDERS} "
                                               f"(got {request.petals_join_orders})")
    workers = _unique_names(pick_workers(list(request.workers), farm, len(request.servers)))
    m = request.model
    as_timed = not m.HasField("params_per_block") and (
        not m.HasField("weight_bits") or m.weight_bits == 16)
    servers = [worker_server(w, request.load.l_in, as_timed) for w in workers]
    for s in request.servers:
        servers.append({"name": s.name, **_nonzero(s, SERVER_FIELDS),
                        "region": s.region or COORDINATOR_REGION})
    clients = [{"name": c.name, **_nonzero(c, ("count",)),
                "region": c.region or COORDINATOR_REGION,
                **_optional(c, ("sessions", "arrival_rate"))} for c in request.clients] or [
        {"name": "client", "region": COORDINATOR_REGION}]
    load = request.load
    data = {
        "name": "farm", "seed": request.seed,
        "model": {"catalog": request.model.catalog, **_optional(request.model, MODEL_FIELDS)},
        "servers": servers, "clients": clients, "rtt": _rtt(request, workers),
        "load": {"sessions": load.sessions, "l_in": load.l_in, "l_out": load.l_out,
                 **_optional(load, ("arrival_rate",))},
        "petals": {"join_orders": request.petals_join_orders or DEFAULT_JOIN_ORDERS},
        "milp": {"time_limit_s": request.milp_time_limit_s or DEFAULT_MILP_LIMIT_S},
    }
    return data, workers


_SERVER_PATH = re.compile(r"^servers\.(\d+)(.*)$")


def request_field(field: str, workers: list[FarmWorker]) -> str:
    """A fleet-dict field path as the request's: servers.K -> workers.NAME or servers.K'."""
    m = _SERVER_PATH.match(field)
    if not m:
        return {"milp.time_limit_s": "milp_time_limit_s",
                "petals.join_orders": "petals_join_orders"}.get(field, field)
    k, rest = int(m.group(1)), m.group(2)
    if k < len(workers):
        return f"workers.{workers[k].name}{rest}"
    return f"servers.{k - len(workers)}{rest}"
