"""The simulator: deterministic by seed, memory never overcommitted, queues what does not fit."""

from __future__ import annotations

import numpy as np
import pytest

from metainf.placement import registry
from metainf.placement.fleet import fleet_from_dict
from metainf.placement.perf import Hop, cache_need, request_time
from metainf.placement.plan import Plan, StaticRouter
from metainf.placement.simulate import arrivals, simulate
from metainf.placement.synthetic import fleet_dict, random_fleet


@pytest.mark.parametrize("name", ["petals", "greedy", "online"])
def test_same_seed_same_run_other_seed_other_run(name):
    fleet = random_fleet(20, 3, 1)
    plan = registry.get(name).plan(fleet, 0)
    a, b = simulate(plan, fleet, seed=11), simulate(plan, fleet, seed=11)
    assert (a.finish == b.finish).all() and a.routes == b.routes
    assert a.summary() == b.summary()
    c = simulate(plan, fleet, seed=12)
    assert not np.array_equal(a.arrival, c.arrival)


def _peak_use(fleet, result):
    """Highest cache bytes held per server at any session start."""
    peak = np.zeros(fleet.num_servers)
    for t in result.start:
        use = np.zeros(fleet.num_servers)
        for s, f, route in zip(result.start, result.finish, result.routes):
            if s <= t < f:
                for j, b in cache_need(fleet, route).items():
                    use[j] += b
        peak = np.maximum(peak, use)
    return peak


@pytest.mark.parametrize("name", ["petals", "greedy", "online"])
def test_sessions_never_hold_more_cache_than_the_plan_leaves(name):
    spec = fleet_dict(12, 2, 3)
    spec["load"].update(arrival_rate=2.0, requests=60, cap_concurrency=False)
    fleet = fleet_from_dict(spec)
    plan = registry.get(name).plan(fleet, 0)
    result = simulate(plan, fleet)
    assert result.failed == 0 and len(result.finish) == 60
    peak = _peak_use(fleet, result)
    assert (peak <= plan.cache_capacity + 1e-6).all()
    if name != "petals":  # PETALS' cache pool is far larger than this load needs
        assert (peak > 0.9 * plan.cache_capacity).any() and result.queue_s.max() > 0


def _one_slot_plan(fleet):
    """All blocks on server 0, with cache memory for exactly one session."""
    route = (Hop(0, 0, fleet.num_blocks),)
    need = cache_need(fleet, route)[0]
    capacity = np.zeros(fleet.num_servers)
    capacity[0] = 1.5 * need
    routes = tuple((route,) for _ in range(fleet.num_clients))
    return Plan("one-slot", ((0, fleet.num_blocks),) + (None,) * (fleet.num_servers - 1),
                capacity, routes, StaticRouter(routes)), route


def test_a_request_waits_for_memory_and_starts_when_it_frees(toy):
    toy["load"].update(arrival_rate=2.0, requests=12, cap_concurrency=False)
    fleet = fleet_from_dict(toy)
    plan, route = _one_slot_plan(fleet)
    result = simulate(plan, fleet)
    order = np.argsort(result.start)
    starts, finishes = result.start[order], result.finish[order]
    assert (starts[1:] >= finishes[:-1] - 1e-9).all()
    assert result.queue_s.max() > 0
    waited = result.queue_s > 0
    assert np.isin(result.start[waited], result.finish).all()


def test_time_per_token_is_the_model_when_nothing_waits(toy):
    toy["load"].update(arrival_rate=0.0001, requests=5)
    fleet = fleet_from_dict(toy)
    plan = registry.get("greedy").plan(fleet, 0)
    result = simulate(plan, fleet)
    assert result.queue_s.max() == 0
    for c, tpt in zip(result.client, result.s_per_token):
        assert tpt == pytest.approx(request_time(fleet, c, plan.routes[c][0]) / fleet.load.l_out)


def test_a_client_runs_at_most_its_sessions_at_once(toy):
    toy["load"].update(arrival_rate=3.0, requests=50)
    fleet = fleet_from_dict(toy)
    plan = registry.get("greedy").plan(fleet, 0)

    def peak(result, client):
        mine = result.client == client
        s, f = result.start[mine], result.finish[mine]
        return max(int(((s <= t) & (t < f)).sum()) for t in s)

    capped = simulate(plan, fleet)
    free = simulate(plan, fleet, cap_concurrency=False)
    for c in range(fleet.num_clients):
        assert peak(capped, c) <= fleet.client_sessions[c]
    assert max(peak(free, c) for c in range(fleet.num_clients)) > max(fleet.client_sessions)


def test_arrivals_are_poisson_at_the_client_rate(toy):
    toy["clients"] = [{"name": "only", "region": "x", "arrival_rate": 0.5}]
    toy["load"]["sessions"] = 1
    fleet = fleet_from_dict(toy)
    times = np.asarray([t for t, _ in arrivals(fleet, 0, 4000)])
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert gaps.mean() == pytest.approx(2.0, rel=0.05)
    assert gaps.std() == pytest.approx(2.0, rel=0.08)
