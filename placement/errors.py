"""Errors of the placement package: bad fleet input (naming the field) and failed plans."""

from __future__ import annotations


class PlacementError(ValueError):
    """A plan that cannot be made (for example, a model that does not fit)."""


class FleetError(PlacementError):
    """Bad fleet input; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
