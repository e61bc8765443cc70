"""Quiet cores: how much of a worker's cores other processes use, and a bounded wait for quiet.

Before each measured run the engine host asks whether its cores are quiet: the busy time of
those cores in /proc/stat (user, nice, system, irq, softirq and steal, which on a VM is time
the hypervisor gave to someone else) over a short window, less the CPU time of its own
process tree (the engine host and the engine processes it started). Where other processes
use more than the policy's share, it waits in short windows, bounded, and says so in the
record; the record also gives the other processes' share during the run itself.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""Units of /proc/stat's counters per second (USER_HZ)."""

BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
"""user, nice, system, irq, softirq, steal: the columns of a /proc/stat cpu line counted busy."""

IDLE_FIELDS = (3, 4)
"""idle, iowait."""


@dataclass(frozen=True)
class QuietPolicy:
    """When a worker's cores count as quiet, and how long to wait for them before a run."""

    threshold: float = 0.15
    """Largest share of the cores' time other processes may use for the cores to be quiet."""
    window_s: float = 0.25
    """Shortest interval a load is measured over (/proc/stat counts in 10 ms ticks)."""
    max_wait_s: float = 3.0
    """Longest wait for quiet cores before a run; never longer than the last run took."""


DEFAULT_QUIET = QuietPolicy()
"""The policy a worker's engine host uses."""


@dataclass(frozen=True)
class CpuSample:
    """A point in time: busy and total ticks of the cores, and this process tree's CPU time."""

    busy_ticks: int
    total_ticks: int
    own_cpu_s: float
    wall: float


def read_cpu_ticks(cpus: Sequence[int], stat_path: str = "/proc/stat") -> tuple[int, int]:
    """Busy and total ticks summed over the given cores (0, 0 where /proc/stat is missing)."""
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0
    try:
        lines = Path(stat_path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name not in wanted:
            continue
        values = [int(v) for v in rest.split()]
        b = sum(values[i] for i in BUSY_FIELDS if i < len(values))
        busy += b
        total += b + sum(values[i] for i in IDLE_FIELDS if i < len(values))
    return busy, total


def own_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and every process it started, in seconds."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def other_share(before: CpuSample, after: CpuSample, ticks_per_s: float = CLOCK_TICKS) -> float:
    """Share (0..1) of the cores' time between two samples used by other processes."""
    total = after.total_ticks - before.total_ticks
    if total <= 0:
        return 0.0
    busy = after.busy_ticks - before.busy_ticks
    own = (after.own_cpu_s - before.own_cpu_s) * ticks_per_s
    return min(1.0, max(0.0, (busy - own) / total))


class CoreLoadMeter:
    """Measures other processes' load on a set of cores and waits, bounded, for quiet."""

    def __init__(self, cpus: Sequence[int], policy: QuietPolicy, pid: int | None = None,
                 ticks: Callable[[Sequence[int]], tuple[int, int]] = read_cpu_ticks,
                 own_cpu: Callable[[int], float] = own_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cpus = tuple(cpus) or tuple(sorted(_usable_cpus()))
        self.policy = policy
        self.pid = os.getpid() if pid is None else pid
        self._ticks, self._own_cpu, self._clock, self._sleep = ticks, own_cpu, clock, sleep
        self._last = self.sample()

    def sample(self) -> CpuSample:
        """Now: the cores' ticks and the process tree's CPU time."""
        busy, total = self._ticks(self.cpus)
        return CpuSample(busy, total, self._own_cpu(self.pid), self._clock())

    def _since_last(self) -> float:
        """Other processes' share since the last sample, over at least one window."""
        rest = self.policy.window_s - (self._clock() - self._last.wall)
        if rest > 0:
            self._sleep(rest)
        now = self.sample()
        share = other_share(self._last, now)
        self._last = now
        return share

    def before_run(self, last_run_s: float) -> dict[str, Any]:
        """Check the cores before a run: the load since the last check (the previous run or
        the warm-up, or one window), then wait in windows while it is above the threshold,
        at most max_wait_s and never longer than `last_run_s`."""
        share = self._since_last()
        waited, t0 = 0.0, self._clock()
        limit = min(self.policy.max_wait_s, max(last_run_s, 0.0))
        while share > self.policy.threshold and waited < limit:
            share = self._since_last()
            waited = self._clock() - t0
        record = {"other_load_before": round(share, 3), "waited_s": round(waited, 2),
                  "quiet": share <= self.policy.threshold}
        if not record["quiet"]:
            log.warning("cores %s busy: other processes use %.0f%% of them after waiting "
                        "%.1f s; measuring anyway (recorded with the run)",
                        _cpu_list(self.cpus), 100 * share, waited)
        elif waited > 0:
            log.info("cores %s quiet after waiting %.1f s", _cpu_list(self.cpus), waited)
        return record

    def after_run(self) -> float:
        """Other processes' share of the cores during the run just finished."""
        now = self.sample()
        share = other_share(self._last, now)
        self._last = now
        return round(share, 3)


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def _cpu_list(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)
