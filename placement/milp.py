"""The exact offline problem as a MILP (scipy's HiGHS), for fleets small enough to solve.

Variables: h[j,b] = server j holds block b (contiguous: at most one start u[j,b]);
each planned request runs every block exactly once on a server holding it, entering a
server costs a hop (counted per client, see `solve`). Server j's
memory holds its blocks and the caches of the requests passing through them. The
objective is the sum over the |R| planned requests of their time (RTT · l_out per
hop, τᴵ + (l_out - 1)·τ per block), the same as `Plan.objective`, so the greedy plan
(feasible here by construction) can be compared with it: its gap is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from .errors import PlacementError
from .fleet import Fleet
from .greedy import GreedyPlanner
from .perf import Hop, Route, hop_costs, request_time
from .plan import Plan, StaticRouter, cache_capacity


class _Rows:
    """A sparse constraint matrix built row by row."""

    def __init__(self) -> None:
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []

    def add(self, cols: list[int], vals: list[float], lb: float, ub: float) -> None:
        """Append one row lb <= Σ vals·x[cols] <= ub."""
        row = len(self.lb)
        self.r.extend([row] * len(cols))
        self.c.extend(cols)
        self.v.extend(vals)
        self.lb.append(lb)
        self.ub.append(ub)

    def constraint(self, n: int) -> LinearConstraint:
        """The rows as one scipy LinearConstraint over n variables."""
        a = coo_matrix((self.v, (self.r, self.c)), shape=(len(self.lb), n)).tocsr()
        return LinearConstraint(a, np.asarray(self.lb), np.asarray(self.ub))


def solve(fleet: Fleet, time_limit_s: float | None = None) -> dict:
    """Solve the MILP; a dict with status, ranges, per-request routes, objective and bound.

    A client's |R_c| requests are interchangeable, so the solver sees counts: n[c,j,b]
    of them run block b on server j, and g[c,j,b] >= n[c,j,b] - n[c,j,b-1] enter j at b.
    Counts decompose into |R_c| routes with exactly that many hops (keep min(n_b-1, n_b)
    requests on j, move the rest), so this is the per-request problem without symmetry.
    """
    J, L = fleet.num_servers, fleet.num_blocks
    sessions = [int(s) for s in fleet.client_sessions]
    clients = [c for c in range(fleet.num_clients) if sessions[c] > 0]
    C = len(clients)
    JL = J * L
    H, U, N = 0, JL, 2 * JL
    G = N + C * JL
    n = G + C * JL

    def h(j: int, b: int) -> int:
        """Index of h[j,b]: server j holds block b."""
        return H + j * L + b

    def u(j: int, b: int) -> int:
        """Index of u[j,b]: server j's range starts at b."""
        return U + j * L + b

    def nn(k: int, j: int, b: int) -> int:
        """Index of n[k,j,b]: client k's requests running b on j."""
        return N + (k * J + j) * L + b

    def g(k: int, j: int, b: int) -> int:
        """Index of g[k,j,b]: client k's requests entering j at b."""
        return G + (k * J + j) * L + b

    cost = np.zeros(n)
    upper = np.ones(n)
    for k, c in enumerate(clients):
        per_hop, per_block = hop_costs(fleet, c)
        for j in range(J):
            cost[nn(k, j, 0):nn(k, j, 0) + L] = per_block[j]
            cost[g(k, j, 0):g(k, j, 0) + L] = per_hop[j]
            upper[nn(k, j, 0):nn(k, j, 0) + L] = sessions[c]
            upper[g(k, j, 0):g(k, j, 0) + L] = sessions[c]
    rows = _Rows()
    ratio = fleet.cache_bytes / fleet.block_bytes
    for j in range(J):
        rows.add([h(j, 0), u(j, 0)], [1, -1], -np.inf, 0)
        for b in range(1, L):
            rows.add([h(j, b), h(j, b - 1), u(j, b)], [1, -1, -1], -np.inf, 0)
        rows.add([u(j, b) for b in range(L)], [1] * L, -np.inf, 1)
        cols = [h(j, b) for b in range(L)] + [nn(k, j, b) for k in range(C) for b in range(L)]
        vals = [1.0] * L + [ratio] * (C * L)
        rows.add(cols, vals, -np.inf, fleet.memory_bytes[j] / fleet.block_bytes)
        if fleet.memory_bytes[j] < fleet.block_bytes:
            upper[h(j, 0):h(j, 0) + L] = 0
    for k, c in enumerate(clients):
        for b in range(L):
            rows.add([nn(k, j, b) for j in range(J)], [1] * J, sessions[c], sessions[c])
        for j in range(J):
            for b in range(L):
                rows.add([nn(k, j, b), h(j, b)], [1, -sessions[c]], -np.inf, 0)
                if b == 0:
                    rows.add([nn(k, j, 0), g(k, j, 0)], [1, -1], -np.inf, 0)
                else:
                    rows.add([nn(k, j, b), nn(k, j, b - 1), g(k, j, b)], [1, -1, -1],
                             -np.inf, 0)
    integrality = np.zeros(n)
    integrality[H:H + JL] = 1
    integrality[N:G] = 1
    limit = fleet.milp_time_limit_s if time_limit_s is None else time_limit_s
    res = milp(cost, integrality=integrality, bounds=Bounds(np.zeros(n), upper),
               constraints=rows.constraint(n), options={"time_limit": limit, "disp": False})
    out = {"status": {0: "optimal", 1: "time_limit"}.get(res.status, "failed"),
           "message": str(res.message), "time_limit_s": limit,
           "dual_bound_s": getattr(res, "mip_dual_bound", None), "variables": n}
    if res.x is None:
        out["status"] = "failed" if res.status != 1 else "no_solution_in_time"
        return out
    x = np.round(res.x).astype(int)
    ranges: list[tuple[int, int] | None] = []
    for j in range(J):
        held = np.flatnonzero(x[h(j, 0):h(j, 0) + L])
        ranges.append((int(held[0]), int(held[-1]) + 1) if len(held) else None)
    routes: list[Route] = []
    owners: list[int] = []
    for k, c in enumerate(clients):
        counts = np.asarray([[x[nn(k, j, b)] for b in range(L)] for j in range(J)])
        routes.extend(decompose(counts))
        owners.extend([c] * sessions[c])
    out.update(ranges=tuple(ranges), routes=routes, clients=owners,
               objective_s=float(res.fun))
    return out


def decompose(counts: np.ndarray) -> list[Route]:
    """Routes from per-(server, block) counts: stay where the count allows, move the rest."""
    J, L = counts.shape
    at: list[int] = []
    for j in range(J):
        at.extend([j] * int(counts[j, 0]))
    paths = [[j] for j in at]
    for b in range(1, L):
        room = counts[:, b].astype(int).copy()
        moved = []
        for p in paths:
            if room[p[-1]] > 0:
                room[p[-1]] -= 1
                p.append(p[-1])
            else:
                moved.append(p)
        free = [j for j in range(J) for _ in range(int(room[j]))]
        for p, j in zip(moved, free):
            p.append(j)
    routes = []
    for p in paths:
        hops: list[Hop] = []
        for b, j in enumerate(p):
            if hops and hops[-1].server == j:
                hops[-1] = Hop(j, hops[-1].start, b + 1)
            else:
                hops.append(Hop(j, b, b + 1))
        routes.append(tuple(hops))
    return routes


@dataclass(frozen=True)
class MilpPlanner:
    """The exact MILP (HiGHS, time-limited); reports the greedy plan's optimality gap."""

    name: str = "milp"
    time_limit_s: float | None = None

    def plan(self, fleet: Fleet, seed: int) -> Plan:
        """Solve; the plan's routes are each client's requests' routes, cheapest first."""
        out = solve(fleet, self.time_limit_s)
        if "ranges" not in out:
            raise PlacementError(f"milp: {out['status']} within {out['time_limit_s']} s "
                                 f"({out['message']})")
        per_client: list[list[Route]] = [[] for _ in range(fleet.num_clients)]
        for c, route in zip(out["clients"], out["routes"]):
            per_client[c].append(route)
        routes = tuple(tuple(sorted(rs, key=lambda r, c=c: request_time(fleet, c, r)))
                       for c, rs in enumerate(per_client))
        candidates = tuple(tuple(dict.fromkeys(rs)) for rs in routes)
        info = {k: out[k] for k in ("status", "objective_s", "dual_bound_s", "time_limit_s",
                                    "variables")}
        try:
            greedy = GreedyPlanner().plan(fleet, seed).objective(fleet)
        except PlacementError as exc:
            info["greedy_error"] = str(exc)
        else:
            info["greedy_objective_s"] = greedy
            info["greedy_gap"] = (greedy - out["objective_s"]) / out["objective_s"]
            bound = out.get("dual_bound_s")
            if bound:
                info["greedy_gap_to_bound"] = (greedy - bound) / bound
        return Plan(self.name, out["ranges"], cache_capacity(fleet, out["ranges"]), routes,
                    StaticRouter(candidates), info=info)
