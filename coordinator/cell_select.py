"""Select's candidates for a stored cell on its hardware class (used by drift and active)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from metainf.workloads import spec_fields

if TYPE_CHECKING:
    from metainf.selector.artifact import TrainedModel
    from metainf.selector.selection import Candidate

log = logging.getLogger(__name__)


def cell_candidates(model: TrainedModel, cell: dict[str, Any], label: str,
                    profile: dict[str, Any], methods: Sequence[str]
                    ) -> list[Candidate] | None:
    """Select's candidates for a cell's task (its model, workload, batch size) over
    `methods` on the hardware class (label, profile): asked by workload label first, then
    by the cell's workload spec; None when the model can answer neither."""
    from metainf.selector.query import HardwareOption, SelectionError, SelectQuery
    from metainf.selector.selection import select

    spec = spec_fields(json.loads(cell["workload_json"]))
    option = HardwareOption(name=label, profile=profile)
    for asked in ({"workload": cell["workload_label"]}, spec):
        query = SelectQuery(model=cell["model"], hardware=(option,),
                            workload={**asked, "batch_size": cell["batch_size"]},
                            methods=tuple(methods))
        try:
            return select(model, query).candidates
        except SelectionError as exc:
            log.debug("cell %s: no prediction from %s: %s", cell["cell_id"], asked, exc)
    return None
