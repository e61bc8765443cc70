"""Place and route: split a model's blocks over a geo-distributed fleet and route its clients.

The library behind `metainf place`: a fleet file (`fleet.load_fleet`), the performance
model (`perf`), planning algorithms behind one interface (`registry.get`), a seeded
discrete-event simulator (`simulate.simulate`) and the CLI's JSON contract
(`cli_entry.place_simulate`).
"""

from .errors import FleetError, PlacementError

__all__ = ["FleetError", "PlacementError"]
