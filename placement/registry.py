"""The algorithms by name: `get("greedy")` returns a planner; unknown names list the known."""

from __future__ import annotations

from collections.abc import Callable

from .base import Planner
from .errors import PlacementError
from .greedy import GreedyPlanner
from .milp import MilpPlanner
from .online import OnlinePlanner
from .petals import PetalsPlanner

_PLANNERS: dict[str, Callable[[], Planner]] = {
    "petals": PetalsPlanner,
    "greedy": GreedyPlanner,
    "online": OnlinePlanner,
    "milp": MilpPlanner,
}


def names() -> list[str]:
    """Registered algorithm names, in the order `place simulate` runs them."""
    return list(_PLANNERS)


def get(name: str) -> Planner:
    """A fresh planner for `name`; PlacementError naming the known ones if unknown."""
    try:
        return _PLANNERS[name]()
    except KeyError:
        raise PlacementError(f"algorithm: unknown {name!r}; known: {', '.join(names())}"
                             ) from None


def register(name: str, factory: Callable[[], Planner]) -> None:
    """Add an algorithm (for plugins and tests); refuses to replace a known name."""
    if name in _PLANNERS:
        raise PlacementError(f"algorithm {name!r} is already registered")
    _PLANNERS[name] = factory
