"""Planners: routes cover blocks 1..L in order, memory holds, MILP ≤ greedy, PETALS' rules."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from metainf.placement import greedy as greedy_module
from metainf.placement import registry
from metainf.placement.base import timed_plan
from metainf.placement.errors import PlacementError
from metainf.placement.fleet import fleet_from_dict
from metainf.placement.greedy import GreedyPlanner, conservative_blocks
from metainf.placement.perf import covers_in_order, request_time
from metainf.placement.petals import choose_best_start, petals_blocks
from metainf.placement.routing import shortest_route
from metainf.placement.synthetic import random_fleet, scaled_anchor

FAST = ["petals", "greedy", "online"]


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_route_covers_all_blocks_in_order(name, seed):
    fleet = random_fleet(30, 4, seed)
    plan = timed_plan(registry.get(name), fleet, seed)
    starts, ends = plan.starts_ends()
    for routes in plan.routes:
        for route in routes:
            assert covers_in_order(route, fleet.num_blocks)
            for hop in route:
                assert starts[hop.server] <= hop.start and hop.end <= ends[hop.server]


def test_greedy_memory_holds_its_sessions_even_if_all_pass_everywhere():
    fleet = random_fleet(40, 5, 7)
    plan = registry.get("greedy").plan(fleet, 0)
    blocks = np.asarray([(r[1] - r[0]) if r else 0 for r in plan.ranges])
    worst = blocks * (fleet.block_bytes + fleet.load.sessions * fleet.cache_bytes)
    assert (worst <= fleet.memory_bytes).all()
    assert (plan.memory_used(fleet, plan.planned_sessions(fleet)) <= fleet.memory_bytes).all()
    assert (blocks == np.where(blocks > 0, conservative_blocks(fleet), 0)).all()


def test_greedy_refuses_a_load_whose_caches_leave_too_little_room(toy):
    toy["load"]["sessions"] = 200
    fleet = fleet_from_dict(toy)
    with pytest.raises(PlacementError, match="load.sessions"):
        registry.get("greedy").plan(fleet, 0)


def test_shortest_route_matches_brute_force(toy):
    fleet = fleet_from_dict(toy)
    plan = registry.get("greedy").plan(fleet, 0)
    starts, ends = plan.starts_ends()
    for client in range(fleet.num_clients):
        cost, route = shortest_route(fleet, client, starts, ends)
        assert cost == pytest.approx(request_time(fleet, client, route))
        assert cost == pytest.approx(_brute_force(fleet, client, starts, ends))


def _brute_force(fleet, client, starts, ends):
    """Cheapest chain by trying every sequence of (server, hop end)."""
    L = fleet.num_blocks
    best = {0: 0.0}
    for at in range(L):
        if at not in best:
            continue
        for j, b in itertools.product(range(fleet.num_servers), range(at + 1, L + 1)):
            if starts[j] <= at and b <= ends[j]:
                from metainf.placement.perf import Hop
                cost = best[at] + request_time(fleet, client, (Hop(j, at, b),))
                best[b] = min(best.get(b, np.inf), cost)
    return best[L]


@pytest.mark.parametrize("seed", [2, 6, 7, 11])
def test_window_moves_never_raise_the_objective_and_keep_block_counts(seed):
    fleet = scaled_anchor(seed, n_clients=2)
    rule = GreedyPlanner(improve=False).plan(fleet, 0)
    improved = GreedyPlanner().plan(fleet, 0)
    assert improved.info["paper_rule_objective_s"] == pytest.approx(rule.objective(fleet))
    assert improved.objective(fleet) <= rule.objective(fleet) * (1 + 1e-12)
    length = [(r[1] - r[0]) if r else 0 for r in improved.ranges]
    assert length == [(r[1] - r[0]) if r else 0 for r in rule.ranges]
    for routes in improved.routes:
        assert all(covers_in_order(r, fleet.num_blocks) for r in routes)
    assert (improved.memory_used(fleet, improved.planned_sessions(fleet))
            <= fleet.memory_bytes).all()
    moved = sum(a != b for a, b in zip(rule.ranges, improved.ranges, strict=True))
    assert moved <= improved.info["window_moves"]  # a window may move in several sweeps
    assert (improved.objective(fleet) < rule.objective(fleet)) == (moved > 0)


def test_two_clients_apart_get_a_nearby_copy_of_the_first_blocks():
    # The rule gives the fifth slice a second copy of block 0, which neither client's
    # route uses; moving it where the other client is shortens that client's route.
    fleet = scaled_anchor(7, n_clients=2)
    rule = GreedyPlanner(improve=False).plan(fleet, 0)
    improved = GreedyPlanner().plan(fleet, 0)
    assert improved.info["window_moves"] >= 1
    assert improved.objective(fleet) < 0.9 * rule.objective(fleet)
    online = registry.get("online").plan(fleet, 0)  # keeps the rule's spare copies
    assert online.ranges == rule.ranges


def test_without_budget_the_rule_stands(monkeypatch):
    fleet = scaled_anchor(7, n_clients=2)
    monkeypatch.setattr(greedy_module, "IMPROVE_WORK", 0)
    plan = GreedyPlanner().plan(fleet, 0)
    assert plan.ranges == GreedyPlanner(improve=False).plan(fleet, 0).ranges
    assert plan.info["window_moves"] == 0


def test_milp_is_no_worse_than_greedy_and_reports_the_gap():
    fleet = scaled_anchor(7, n_clients=2)
    milp = registry.get("milp").plan(fleet, 0)
    greedy = registry.get("greedy").plan(fleet, 0)
    assert milp.info["status"] == "optimal"
    assert milp.objective(fleet) == pytest.approx(milp.info["objective_s"], rel=1e-6)
    assert milp.objective(fleet) <= greedy.objective(fleet) + 1e-6
    assert milp.info["greedy_gap"] == pytest.approx(
        greedy.objective(fleet) / milp.objective(fleet) - 1)
    used = milp.memory_used(fleet, milp.planned_sessions(fleet))
    assert (used <= fleet.memory_bytes * (1 + 1e-9)).all()
    for routes in milp.routes:
        assert all(covers_in_order(r, fleet.num_blocks) for r in routes)


def test_petals_picks_the_least_served_window_like_petals():
    # PETALS compares windows by their sorted throughputs, lexicographically.
    throughputs = np.array([5.0, 0.0, 0.0, 3.0, 0.0, 0.0, 9.0])
    assert choose_best_start(throughputs, 3) == 1  # [0,0,3] beats [0,0,5] and [0,0,9]
    assert choose_best_start(np.zeros(4), 2) == 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        t = rng.integers(0, 4, size=12).astype(float)
        k = int(rng.integers(1, 12))
        reference = min((sorted(t[i:i + k]), i) for i in range(len(t) - k + 1))[-1]
        assert choose_best_start(t, k) == reference


def test_petals_block_count_reserves_its_default_cache(anchor_dict):
    fleet = fleet_from_dict(anchor_dict)
    m = petals_blocks(fleet)
    # (9.5 GB - 2 GiB) / (1.3232 GB + 0.4698 GB) = 4.1; (79.14 GB - 2 GiB) / ... = 42.9
    assert list(m) == [4] * 7 + [42] * 2


def test_petals_join_order_follows_the_seed(anchor_dict):
    fleet = fleet_from_dict(anchor_dict)
    planner = registry.get("petals")
    a, b = planner.plan(fleet, 5), planner.plan(fleet, 5)
    assert a.ranges == b.ranges and a.info["join_order"] == b.info["join_order"]
    orders = {tuple(planner.plan(fleet, s).info["join_order"]) for s in range(10)}
    assert len(orders) > 5


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(PlacementError, match="known: petals, greedy, online, milp"):
        registry.get("simulated-annealing")


@pytest.mark.parametrize("n, limit_s", [(100, 1.0)])
def test_planning_a_hundred_servers_is_fast(n, limit_s):
    fleet = random_fleet(n, n // 10, 0)
    plan = timed_plan(registry.get("greedy"), fleet, 0)
    assert plan.plan_s < limit_s
