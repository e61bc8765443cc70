"""Replicated cells: copies of one cell on workers of different operators, and the vote
that accepts one copy into P only when copies agree (BOINC-style validation)."""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass

MAX_TIEBREAKERS = 1
"""Extra copies queued when no two copies agree, before a group is declared disputed."""


def group_id(campaign_id: str, class_id: str, model: str, method: str, workload_label: str,
             batch_size: int) -> str:
    """The id shared by every copy (replica) of one cell on one hardware class."""
    blob = json.dumps([campaign_id, class_id, model, method, workload_label, batch_size])
    return "g" + hashlib.sha256(blob.encode()).hexdigest()[:15]


@dataclass(frozen=True)
class Copy:
    """One finished copy of a cell: its replica number, status and per-repetition runtimes."""

    replica: int
    status: str
    runtimes: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        """Median runtime over repetitions (NaN when the copy has none)."""
        return statistics.median(self.runtimes) if self.runtimes else float("nan")


@dataclass(frozen=True)
class Verdict:
    """What to do with a group whose copies have all finished."""

    state: str
    """agreed (accept `accepted_replica`), tiebreak (queue one more copy) or disputed."""
    accepted_replica: int | None
    detail: str


def agree(a: Copy, b: Copy, tolerance: float) -> bool:
    """Same final status, and for done copies median runtimes within `tolerance`."""
    if a.status != b.status:
        return False
    if a.status != "done":
        return True
    low, high = sorted((a.median, b.median))
    return high - low <= tolerance * low


def settle(copies: list[Copy], replicas: int, tolerance: float) -> Verdict:
    """Vote on a group whose copies have all finished.

    The copy that agrees with the most others is accepted (lowest replica number on a
    tie), provided at least one other copy agrees with it. Otherwise one more copy is
    queued, up to MAX_TIEBREAKERS beyond the grid's `replicas`; after that the group is
    disputed and none of its copies enters P.
    """
    copies = sorted(copies, key=lambda c: c.replica)
    support = {c.replica: sum(agree(c, o, tolerance) for o in copies if o is not c)
               for c in copies}
    best = max(copies, key=lambda c: (support[c.replica], -c.replica))
    summary = ", ".join(f"r{c.replica} {c.status}" + (f" {c.median:.3f}s" if c.runtimes else "")
                        for c in copies)
    if support[best.replica] >= 1:
        return Verdict("agreed", best.replica,
                       f"{support[best.replica] + 1} of {len(copies)} copies agree ({summary})")
    if len(copies) < replicas + MAX_TIEBREAKERS:
        return Verdict("tiebreak", None, f"no two copies agree ({summary}); one more copy queued")
    return Verdict("disputed", None, f"no two copies agree within {tolerance:.0%} ({summary})")
