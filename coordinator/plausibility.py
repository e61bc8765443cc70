"""Is a reported result believable? Internal consistency and agreement with its class."""

from __future__ import annotations

import functools
import statistics
from typing import Any

from metainf.coordinator.campaigns import STATS_VOCAB
from metainf.workloads import WorkloadSpec, build_requests

CONSISTENCY_TOLERANCE = 0.05
"""Allowed relative mismatch between throughput x runtime and the workload's own counts."""

CLASS_DEVIATION_FACTOR = 3.0
"""A cell's median runtime this many times above or below its class's median is flagged."""

MIN_CLASS_SAMPLES = 2
"""Earlier cells of the same class and key needed before the class median is trusted."""


@functools.lru_cache(maxsize=512)
def workload_totals(workload_json: str) -> tuple[int, int]:
    """(requests, output tokens) a workload must produce, from its spec."""
    spec = WorkloadSpec.model_validate_json(workload_json)
    requests = build_requests(spec, STATS_VOCAB)
    return len(requests), sum(r.output_tokens for r in requests)


def _off(measured: float, expected: float) -> bool:
    return abs(measured - expected) > CONSISTENCY_TOLERANCE * max(expected, 1.0)


def check_runs(cell: dict[str, Any], runs: list[dict[str, Any]]) -> str | None:
    """The first reason a cell's done runs cannot be true, or None.

    Throughputs must match the workload's request and token counts over the runtime;
    percentiles must be ordered and within the run.
    """
    n_requests, n_tokens = workload_totals(cell["workload_json"])
    for run in runs:
        rep, runtime = run["repetition"], run["runtime_s"]
        if runtime >= cell["timeout_s"]:
            return f"runs[{rep}]: runtime {runtime:.1f} s beyond the cell's timeout"
        if _off(run["request_throughput"] * runtime, n_requests):
            return (f"runs[{rep}]: request_throughput x runtime = "
                    f"{run['request_throughput'] * runtime:.1f}, the workload has {n_requests}")
        if _off(run["throughput_tok_s"] * runtime, n_tokens):
            return (f"runs[{rep}]: throughput_tok_s x runtime = "
                    f"{run['throughput_tok_s'] * runtime:.0f} tokens, the workload makes "
                    f"{n_tokens}")
        slack = 1e-6 + 0.01 * runtime
        if run["ttft_p50_s"] > run["ttft_p99_s"] + slack or run["ttft_p99_s"] > runtime + slack:
            return f"runs[{rep}]: TTFT percentiles out of order or beyond the runtime"
        if run["itl_p50_s"] > run["itl_p99_s"] + slack or run["itl_p99_s"] > runtime + slack:
            return f"runs[{rep}]: ITL percentiles out of order or beyond the runtime"
    return None


def check_against_class(runs: list[dict[str, Any]], peer_medians: list[float]) -> str | None:
    """Flag a cell whose median runtime is far from other cells of its class and key."""
    if len(peer_medians) < MIN_CLASS_SAMPLES:
        return None
    mine = statistics.median(r["runtime_s"] for r in runs)
    theirs = statistics.median(peer_medians)
    ratio = mine / theirs
    if ratio > CLASS_DEVIATION_FACTOR or ratio < 1 / CLASS_DEVIATION_FACTOR:
        return (f"median runtime {mine:.3f} s is {ratio:.2f}x the median of "
                f"{len(peer_medians)} earlier cells of this hardware class ({theirs:.3f} s)")
    return None
