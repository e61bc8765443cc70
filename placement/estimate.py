"""τ from hardware facts when a server's block time was never measured.

Decode reads every weight of a block once per token, so τ = block bytes / memory
bandwidth; a prefill of l_in tokens is bound by the larger of that read and its FLOPs
over peak, τᴵ = max(bytes / bandwidth, l_in · FLOPs per token / peak). Both are ideal
times divided by an efficiency: the median ratio ideal / measured over the servers of
the same fleet that were timed, or a default when none was.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import FleetError
from .shapes import ModelShape

DEFAULT_EFFICIENCY = 0.5
"""Fraction of datasheet bandwidth/peak reached when no timed server calibrates it."""


@dataclass(frozen=True)
class DeviceFacts:
    """The datasheet numbers τ is estimated from."""

    bandwidth_bytes_s: float
    flops: float
    memory_bytes: float | None = None


def lookup_device(name: str, field: str) -> DeviceFacts:
    """Facts of a hardware name from the farm's hardware catalog; `field` names it in errors."""
    try:
        from metainf.hardware_catalog import lookup
    except ImportError as exc:  # the catalog is optional: inline facts work without it
        raise FleetError(field, f"no hardware catalog to look {name!r} up ({exc}); give "
                                "bandwidth_tbs and tflops inline") from exc
    facts = lookup(name)
    if facts is None or not facts.bandwidth_tbs:
        raise FleetError(field, f"hardware {name!r} is not in the catalog (or lacks its "
                                "memory bandwidth); give bandwidth_tbs and tflops inline")
    tflops = facts.bf16_tflops or facts.fp16_tflops or 0.0
    memory = facts.memory_gb * 1e9 if facts.memory_gb else None
    return DeviceFacts(facts.bandwidth_tbs * 1e12, tflops * 1e12, memory)


def ideal_taus(shape: ModelShape, device: DeviceFacts, l_in: int) -> tuple[float, float]:
    """(decode τ, prefill τᴵ) in seconds per block at 100 % efficiency."""
    read = shape.block_bytes / device.bandwidth_bytes_s
    compute = l_in * shape.flops_per_token / device.flops if device.flops > 0 else 0.0
    return read, max(read, compute)


def calibrated_efficiency(pairs: Sequence[tuple[float, float]],
                          default: float = DEFAULT_EFFICIENCY) -> float:
    """Median ideal/measured decode τ over timed servers with known hardware, else default."""
    ratios = [ideal / measured for ideal, measured in pairs if measured > 0 and ideal > 0]
    return min(1.0, statistics.median(ratios)) if ratios else default
