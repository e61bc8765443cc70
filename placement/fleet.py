"""The fleet file: model, servers, clients, RTTs, load and seed, validated at the edge.

`load_fleet(path)` reads YAML (or JSON), refuses unknown keys by name and returns a
`Fleet`: plain arrays in SI units (bytes, seconds) that every algorithm and the
simulator read. Bad input raises `FleetError` whose `field` is the dotted path to fix.
The format is documented in docs/placement.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import FleetError
from .estimate import (
    DEFAULT_EFFICIENCY,
    DeviceFacts,
    calibrated_efficiency,
    ideal_taus,
    lookup_device,
)
from .shapes import ModelShape, load_shape

# ---------------------------------------------------------------- the file's schema


class _Spec(BaseModel):
    """Base of the file's sections: unknown keys refused, values checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Spec):
    """`model:` a catalog name and/or the shape inline, plus how blocks are stored."""

    catalog: str | None = None
    name: str | None = None
    num_blocks: int | None = Field(None, gt=0)
    d_model: int | None = Field(None, gt=0)
    n_heads: int | None = Field(None, gt=0)
    n_kv_heads: int | None = Field(None, gt=0)
    intermediate: int | None = Field(None, gt=0)
    gated_mlp: bool | None = None
    params_per_block: float | None = Field(None, gt=0)
    weight_bits: float = Field(16.0, gt=0)
    block_overhead: float = Field(0.0, ge=0)
    cache_bytes_per_value: float = Field(2.0, gt=0)


class ServerSpec(_Spec):
    """One `servers:` entry (`count` copies, named name-1..name-N when count > 1)."""

    name: str
    count: int = Field(1, gt=0)
    memory_gb: float | None = Field(None, gt=0)
    tau_ms: float | None = Field(None, gt=0)
    tau_prefill_ms: float | None = Field(None, gt=0)
    hardware: str | None = None
    bandwidth_tbs: float | None = Field(None, gt=0)
    tflops: float | None = Field(None, gt=0)
    region: str = "default"
    petals_throughput: float | None = Field(None, gt=0)


class ClientSpec(_Spec):
    """One `clients:` entry: where it is and its share of the planned sessions |R|."""

    name: str
    count: int = Field(1, gt=0)
    region: str = "default"
    sessions: int | None = Field(None, ge=0)
    arrival_rate: float | None = Field(None, ge=0)


class RegionRTT(_Spec):
    """RTT between two regions in ms: a value, or [lo, hi] drawn uniformly (seeded)."""

    a: str
    b: str
    ms: float | tuple[float, float]


class RTTSpec(_Spec):
    """`rtt:` explicit matrices (ms) and/or a region table; extra ms on client hops."""

    client_server_extra_ms: float = Field(0.0, ge=0)
    regions: list[RegionRTT] = []
    client_server_ms: list[list[float]] | None = None
    server_server_ms: list[list[float]] | None = None


class LoadSpec(_Spec):
    """`load:` planned sessions |R| (each client's share caps its concurrency), tokens, arrivals."""

    sessions: int = Field(gt=0)
    l_in: int = Field(gt=0)
    l_out: int = Field(gt=0)
    arrival_rate: float = Field(0.1, ge=0)
    requests: int = Field(100, gt=0)
    cap_concurrency: bool = True


class PetalsSpec(_Spec):
    """`petals:` PETALS' own parameters (routing overhead, cache reservation, join orders)."""

    overhead_ms: float = Field(18.0, ge=0)
    join_orders: int = Field(100, gt=0)
    attn_cache_tokens: int | None = Field(None, gt=0)
    alloc_delay_s: float = Field(10.0, ge=0)


class MilpSpec(_Spec):
    """`milp:` the exact solver's time limit."""

    time_limit_s: float = Field(60.0, gt=0)


class EstimateSpec(_Spec):
    """`estimate:` efficiency for τ estimated from hardware (default: calibrated)."""

    efficiency: float | None = Field(None, gt=0, le=1)


class FleetSpec(_Spec):
    """The whole fleet file."""

    name: str = "fleet"
    model: ModelSpec
    servers: list[ServerSpec] = Field(min_length=1)
    clients: list[ClientSpec] = Field(min_length=1)
    rtt: RTTSpec = RTTSpec()
    load: LoadSpec
    petals: PetalsSpec = PetalsSpec()
    milp: MilpSpec = MilpSpec()
    estimate: EstimateSpec = EstimateSpec()
    seed: int = 0


# ---------------------------------------------------------------- the resolved fleet


@dataclass(frozen=True)
class Load:
    """Planned sessions |R|, tokens per request and the arrival process."""

    sessions: int
    l_in: int
    l_out: int
    arrival_rate: float
    requests: int
    cap_concurrency: bool = True


@dataclass(frozen=True)
class PetalsParams:
    """PETALS' own constants: per-hop overhead, cache reservation, allocation penalty."""

    overhead_s: float = 0.018
    join_orders: int = 100
    attn_cache_tokens: int = 8192
    alloc_delay_s: float = 10.0


@dataclass(frozen=True, eq=False)
class Fleet:
    """A resolved fleet: per-server and per-client arrays in bytes and seconds."""

    name: str
    shape: ModelShape
    load: Load
    server_names: tuple[str, ...]
    server_regions: tuple[str, ...]
    memory_bytes: np.ndarray
    tau_s: np.ndarray
    tau_prefill_s: np.ndarray
    tau_estimated: np.ndarray
    petals_throughput: np.ndarray
    client_names: tuple[str, ...]
    client_regions: tuple[str, ...]
    client_sessions: np.ndarray
    client_rates: np.ndarray
    rtt_cs: np.ndarray
    rtt_ss: np.ndarray
    petals: PetalsParams = field(default_factory=PetalsParams)
    milp_time_limit_s: float = 60.0
    seed: int = 0

    @property
    def num_servers(self) -> int:
        """J, the number of servers."""
        return len(self.server_names)

    @property
    def num_clients(self) -> int:
        """The number of clients."""
        return len(self.client_names)

    @property
    def num_blocks(self) -> int:
        """L, the model's number of blocks."""
        return self.shape.num_blocks

    @property
    def block_bytes(self) -> float:
        """s_m, bytes per block."""
        return self.shape.block_bytes

    @property
    def cache_bytes(self) -> float:
        """s_c, one session's cache on one block for l_in + l_out tokens."""
        return self.shape.cache_bytes_per_block(self.load.l_in + self.load.l_out)

    def max_blocks(self, sessions: int = 0) -> np.ndarray:
        """Blocks each server can hold when `sessions` caches must fit on every block."""
        per = self.block_bytes + sessions * self.cache_bytes
        return np.minimum(np.floor(self.memory_bytes / per), self.num_blocks).astype(int)


def _field(loc: tuple[Any, ...]) -> str:
    """Dotted path of a pydantic error location (unions' member names dropped)."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in (
        "float", "tuple", "list", "int", "str", "bool", "none")))]
    return ".".join(parts) or "fleet"


def _spec(data: Any) -> FleetSpec:
    """Validate a parsed file; the first error becomes a FleetError naming its field."""
    if not isinstance(data, dict):
        raise FleetError("fleet", "the file must hold a mapping (model, servers, clients, ...)")
    try:
        return FleetSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _field(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            raise FleetError(where, "unknown key") from None
        if err["type"] == "missing":
            raise FleetError(where, "required") from None
        got = err.get("input")
        raise FleetError(where, f"{err['msg'].lower()} (got {got!r})") from None


def _shape(spec: ModelSpec) -> ModelShape:
    """The model shape: the catalog's, with inline fields overriding."""
    inline = {k: v for k, v in spec.model_dump().items()
              if k in ("num_blocks", "d_model", "n_heads", "n_kv_heads", "intermediate",
                       "gated_mlp", "params_per_block") and v is not None}
    if spec.catalog:
        shape = load_shape(spec.catalog)
    else:
        missing = [k for k in ("num_blocks", "d_model", "n_heads") if k not in inline]
        if missing:
            raise FleetError(f"model.{missing[0]}",
                             "required when the model has no catalog name")
        d = inline["d_model"]
        from .shapes import block_parameters

        heads = inline["n_heads"]
        kv = inline.get("n_kv_heads", heads)
        inter = inline.get("intermediate", 4 * d)
        gated = inline.get("gated_mlp", False)
        shape = ModelShape(name=spec.name or "inline", num_blocks=inline["num_blocks"],
                           d_model=d, n_heads=heads, n_kv_heads=kv, intermediate=inter,
                           gated_mlp=gated,
                           params_per_block=float(block_parameters(d, heads, kv, inter, gated)))
    if shape.n_kv_heads > shape.n_heads or shape.n_heads % shape.n_kv_heads:
        raise FleetError("model.n_kv_heads", "must divide n_heads")
    return shape.replace(**inline, name=spec.name or shape.name, weight_bits=spec.weight_bits,
                         block_overhead=spec.block_overhead,
                         cache_bytes_per_value=spec.cache_bytes_per_value)


def _expand(entries: list[Any]) -> list[tuple[int, str, Any]]:
    """(file index, name, entry) per item, `count` copies named name-1..name-N."""
    out = []
    for i, entry in enumerate(entries):
        if entry.count == 1:
            out.append((i, entry.name, entry))
        else:
            out.extend((i, f"{entry.name}-{k + 1}", entry) for k in range(entry.count))
    return out


def _matrix(rows: list[list[float]], shape: tuple[int, int], where: str, what: str
            ) -> np.ndarray:
    """An explicit RTT matrix (ms → s), checked for shape and sign."""
    got = (len(rows), len(rows[0]) if rows else 0)
    if any(len(r) != got[1] for r in rows) or got != shape:
        cols = sorted({len(r) for r in rows})
        raise FleetError(where, f"expected {shape[0]} rows × {shape[1]} columns ({what}), "
                                f"got {got[0]} × {'/'.join(map(str, cols)) or 0}")
    m = np.asarray(rows, dtype=float)
    if not np.isfinite(m).all() or (m < 0).any():
        raise FleetError(where, "RTTs must be finite and >= 0 ms")
    return m / 1000.0


class _RegionTable:
    """Region-pair RTTs, fixed or drawn from a seeded generator pair by pair."""

    def __init__(self, entries: list[RegionRTT], rng: np.random.Generator) -> None:
        self._rng = rng
        self._table: dict[frozenset[str], RegionRTT] = {}
        for i, e in enumerate(entries):
            lo, hi = (e.ms, e.ms) if isinstance(e.ms, float | int) else e.ms
            if lo < 0 or hi < lo:
                raise FleetError(f"rtt.regions.{i}.ms", f"need 0 <= lo <= hi (got {e.ms})")
            self._table[frozenset((e.a, e.b))] = e

    def draw(self, a: str, b: str) -> float:
        """One RTT in seconds between regions a and b."""
        e = self._table.get(frozenset((a, b)))
        if e is None:
            raise FleetError("rtt.regions", f"no RTT between regions {a!r} and {b!r}")
        if isinstance(e.ms, float | int):
            return float(e.ms) / 1000.0
        return float(self._rng.uniform(e.ms[0], e.ms[1])) / 1000.0


def _taus(spec: FleetSpec, servers: list[tuple[int, str, ServerSpec]], shape: ModelShape
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(memory bytes, τ, τᴵ, estimated?) per server; τ estimated from hardware if absent."""
    devices: list[DeviceFacts | None] = []
    for i, _, s in servers:
        if s.bandwidth_tbs is not None:
            devices.append(DeviceFacts(s.bandwidth_tbs * 1e12, (s.tflops or 0.0) * 1e12))
        elif s.hardware:
            devices.append(lookup_device(s.hardware, f"servers.{i}.hardware"))
        else:
            devices.append(None)
    l_in = spec.load.l_in
    pairs = [(ideal_taus(shape, d, l_in)[0], s.tau_ms / 1000.0)
             for (_, _, s), d in zip(servers, devices) if d is not None and s.tau_ms]
    efficiency = spec.estimate.efficiency or calibrated_efficiency(pairs, DEFAULT_EFFICIENCY)
    memory, tau, tau_i, estimated = [], [], [], []
    for (i, _, s), d in zip(servers, devices):
        mem = s.memory_gb * 1e9 if s.memory_gb else (d.memory_bytes if d else None)
        if mem is None:
            raise FleetError(f"servers.{i}.memory_gb",
                             "required (or a catalog hardware name to take it from)")
        memory.append(mem)
        if s.tau_ms is not None:
            t = s.tau_ms / 1000.0
            tau.append(t)
            tau_i.append(s.tau_prefill_ms / 1000.0 if s.tau_prefill_ms else t)
            estimated.append(False)
        elif d is not None:
            decode, prefill = ideal_taus(shape, d, l_in)
            tau.append(decode / efficiency)
            tau_i.append(s.tau_prefill_ms / 1000.0 if s.tau_prefill_ms
                         else prefill / efficiency)
            estimated.append(True)
        else:
            raise FleetError(f"servers.{i}.tau_ms",
                             "give tau_ms, or hardware (or bandwidth_tbs) to estimate it from")
    return (np.asarray(memory, float), np.asarray(tau, float), np.asarray(tau_i, float),
            np.asarray(estimated, bool))


def fleet_from_spec(spec: FleetSpec) -> Fleet:
    """Resolve a validated spec: shapes, τ, sessions per client, RTT matrices."""
    shape = _shape(spec.model)
    servers = _expand(spec.servers)
    clients = _expand(spec.clients)
    names = [n for _, n, _ in servers]
    if len(set(names)) != len(names):
        raise FleetError("servers.name", "server names must be unique")
    memory, tau, tau_i, estimated = _taus(spec, servers, shape)
    throughput = np.asarray([s.petals_throughput or 1.0 / t
                             for (_, _, s), t in zip(servers, tau)], float)

    load = Load(spec.load.sessions, spec.load.l_in, spec.load.l_out, spec.load.arrival_rate,
                spec.load.requests, spec.load.cap_concurrency)
    given = [c.sessions for _, _, c in clients]
    if all(g is not None for g in given):
        if sum(given) != load.sessions:
            raise FleetError("clients.sessions", f"sum to {sum(given)}, but load.sessions is "
                                                 f"{load.sessions}")
        sessions = np.asarray(given, int)
    elif any(g is not None for g in given):
        raise FleetError("clients.sessions", "give it for every client or for none")
    else:
        n = len(clients)
        sessions = np.asarray([load.sessions // n + (k < load.sessions % n) for k in range(n)])
    rates = np.asarray([c.arrival_rate if c.arrival_rate is not None else load.arrival_rate
                        for _, _, c in clients], float)

    rng = np.random.default_rng(spec.seed)
    regions = _RegionTable(spec.rtt.regions, rng)
    J, C = len(servers), len(clients)
    if spec.rtt.client_server_ms is not None:
        rtt_cs = _matrix(spec.rtt.client_server_ms, (C, J), "rtt.client_server_ms",
                         "clients × servers")
    else:
        rtt_cs = np.asarray([[regions.draw(c.region, s.region) for _, _, s in servers]
                             for _, _, c in clients], float)
    rtt_cs = rtt_cs + spec.rtt.client_server_extra_ms / 1000.0
    if spec.rtt.server_server_ms is not None:
        rtt_ss = _matrix(spec.rtt.server_server_ms, (J, J), "rtt.server_server_ms",
                         "servers × servers")
    else:
        rtt_ss = np.zeros((J, J))
        for a in range(J):
            for b in range(a + 1, J):
                rtt_ss[a, b] = rtt_ss[b, a] = regions.draw(servers[a][2].region,
                                                          servers[b][2].region)
    fits = int(np.minimum(np.floor(memory / shape.block_bytes), shape.num_blocks).sum())
    if fits < shape.num_blocks:
        raise FleetError("servers.memory_gb",
                         f"the fleet's memory holds {fits} of {shape.name}'s "
                         f"{shape.num_blocks} blocks ({shape.block_bytes / 1e9:.3g} GB each); "
                         "add memory or servers")
    cache_tokens = spec.petals.attn_cache_tokens or (
        8192 if shape.n_kv_heads == shape.n_heads else 32768)
    petals = PetalsParams(spec.petals.overhead_ms / 1000.0, spec.petals.join_orders,
                          cache_tokens, spec.petals.alloc_delay_s)
    return Fleet(
        name=spec.name, shape=shape, load=load, server_names=tuple(names),
        server_regions=tuple(s.region for _, _, s in servers), memory_bytes=memory,
        tau_s=tau, tau_prefill_s=tau_i, tau_estimated=estimated, petals_throughput=throughput,
        client_names=tuple(n for _, n, _ in clients),
        client_regions=tuple(c.region for _, _, c in clients), client_sessions=sessions,
        client_rates=rates, rtt_cs=rtt_cs, rtt_ss=rtt_ss, petals=petals,
        milp_time_limit_s=spec.milp.time_limit_s, seed=spec.seed)


def fleet_from_dict(data: Any) -> Fleet:
    """A fleet from parsed YAML/JSON (the `Place` RPC can build this dict from workers)."""
    return fleet_from_spec(_spec(data))


def load_fleet(path: str | Path) -> Fleet:
    """Read and resolve a fleet file (YAML or JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError("fleet", f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FleetError("fleet", f"{path} is not valid YAML: {exc}") from exc
    return fleet_from_dict(data)
