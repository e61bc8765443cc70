"""The interface every placement-and-routing algorithm implements."""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

from .fleet import Fleet
from .plan import Plan


class Planner(Protocol):
    """Makes a plan (block ranges, routes, a router for the simulator) for a fleet."""

    name: str

    def plan(self, fleet: Fleet, seed: int) -> Plan:
        """A plan for `fleet`; `seed` drives any randomness (PETALS' join order)."""
        ...


def timed_plan(planner: Planner, fleet: Fleet, seed: int) -> Plan:
    """Run a planner and record its wall time (seconds, this process) in `plan_s`."""
    t0 = time.perf_counter()
    plan = planner.plan(fleet, seed)
    return dataclasses.replace(plan, plan_s=time.perf_counter() - t0)
