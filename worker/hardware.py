"""The hardware probe: a worker's GPUs through NVML, its CPU share from the OS, and its class."""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GIB = 1024**3

INFERENCE_ISA_FLAGS = frozenset({
    # x86
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512cd",
    "avx512dq", "avx512vl", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx512vbmi",
    "amx_bf16", "amx_fp16", "amx_int8", "amx_tile",
    # arm
    "neon", "asimd", "asimdhp", "asimddp", "fphp", "bf16", "i8mm", "sve", "sve2", "svebf16",
    "svei8mm", "sme", "sme2",
})
"""CPU flags that change how fast inference kernels run; the profile keeps only these."""

BANDWIDTH_BYTES = 64 * 1024**2
"""Size of the array the bandwidth measurement copies: far beyond any CPU cache."""

BANDWIDTH_SECONDS = 0.2
"""About how long the bandwidth measurement may take (at least BANDWIDTH_MIN_RUNS copies)."""

BANDWIDTH_MIN_RUNS = 3
"""Copies timed at least; the best one counts (the first also faults the pages in)."""


def parse_cpu_list(text: str) -> list[int]:
    """Parse a CPU list such as '0-3,6' into sorted core ids this process may use."""
    cpus: set[int] = set()
    if not text or not text.strip():
        raise ValueError("cpu list is empty: give core ids such as '0-3,6'")
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"bad cpu list item {part!r} in {text!r}: use ids and ranges "
                             f"such as '0-3,6'")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise ValueError(f"bad cpu range {part!r} in {text!r}: the end is below the start")
        cpus.update(range(low, high + 1))
    usable = _usable_cpus()
    outside = sorted(cpus - usable)
    if outside:
        raise ValueError(f"cpu(s) {outside} are outside this machine's usable cpus "
                         f"{_format_cpus(sorted(usable))}")
    return sorted(cpus)


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def _format_cpus(cpus: list[int]) -> str:
    ranges, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            ranges.append(f"{start}" if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(ranges)


def probe(cpus: list[int] | None = None, measure_bandwidth: bool = True) -> dict[str, Any]:
    """The HardwareProfile fields of this machine, for a worker limited to `cpus` if given;
    the host memory bandwidth is measured (~0.2 s) unless `measure_bandwidth` is False."""
    profile = {
        "kind": "cpu",
        "accelerator": "",
        "accelerator_count": 0,
        "accelerator_memory_gb": 0.0,
        "compute_capability": "",
        "driver_version": "",
        "power_limit_w": 0.0,
    }
    gpus = _probe_gpus()
    if gpus:
        profile.update(gpus)
    info = _cpuinfo()
    usable = len(cpus) if cpus else len(_usable_cpus())
    machine = _machine_cores()
    profile.update({
        "cpu_model": _cpu_model(info),
        "cpu_cores": usable,
        "ram_gb": round(_total_ram_bytes() / GIB * min(1.0, usable / machine), 2),
        "isa_flags": _isa_flags(info),
        "cpu_clock_ghz": _cpu_clock_ghz(info),
        "memory_bandwidth_gbs": measure_memory_bandwidth() if measure_bandwidth else 0.0,
    })
    return profile


def measure_memory_bandwidth(nbytes: int = BANDWIDTH_BYTES,
                             seconds: float = BANDWIDTH_SECONDS,
                             min_runs: int = BANDWIDTH_MIN_RUNS,
                             clock: Any = time.perf_counter) -> float:
    """Host memory bandwidth in GB/s: bytes read plus written per second by the fastest of
    repeated numpy copies of an `nbytes` array (one thread; ~`seconds` in all)."""
    import numpy as np

    src = np.ones(max(nbytes // 8, 1), dtype=np.float64)
    dst = np.empty_like(src)
    best, runs, start = math.inf, 0, clock()
    while runs < min_runs or (clock() - start < seconds and runs < 100):
        t0 = clock()
        np.copyto(dst, src)
        best = min(best, clock() - t0)
        runs += 1
    if not best > 0:
        return 0.0
    return round(2 * src.nbytes / best / 1e9, 2)


# --------------------------------------------------------------------------- GPUs


def _probe_gpus() -> dict[str, Any] | None:
    """GPU fields from NVML, or None when there is no NVML library, no GPU or any NVML error."""
    try:
        import pynvml
    except ImportError:
        log.debug("pynvml is not installed: no GPU probe")
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.debug("no NVML (%s): probing as a CPU worker", exc)
        return None
    try:
        handles = _visible_handles(pynvml)
        if not handles:
            return None
        names = [_text(pynvml.nvmlDeviceGetName(h)) for h in handles]
        if len(set(names)) > 1:
            log.warning("mixed GPU models %s: profiling as %s", sorted(set(names)), names[0])
        first = handles[0]
        memory = pynvml.nvmlDeviceGetMemoryInfo(first).total / GIB
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(first)
        try:
            power_w = pynvml.nvmlDeviceGetEnforcedPowerLimit(first) / 1000.0
        except pynvml.NVMLError:
            power_w = 0.0
        return {
            "kind": "gpu",
            "accelerator": names[0],
            "accelerator_count": len(handles),
            "accelerator_memory_gb": round(memory, 2),
            "compute_capability": f"{major}.{minor}",
            "driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
            "power_limit_w": round(power_w, 1),
        }
    except pynvml.NVMLError as exc:
        log.debug("NVML error while probing GPUs (%s): probing as a CPU worker", exc)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _visible_handles(pynvml: Any) -> list[Any]:
    """Handles of the GPUs this process may use (CUDA_VISIBLE_DEVICES when set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    handles = []
    for item in (v.strip() for v in visible.split(",")):
        if not item:
            continue
        if item.isdigit():
            handles.append(pynvml.nvmlDeviceGetHandleByIndex(int(item)))
        elif item.startswith(("GPU-", "MIG-")):
            handles.append(pynvml.nvmlDeviceGetHandleByUUID(item))
        else:  # CUDA stops at the first invalid entry
            break
    return handles


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- CPU


def _cpuinfo() -> dict[str, str]:
    """First value of each key of /proc/cpuinfo (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def _cpu_model(info: Mapping[str, str]) -> str:
    for key in ("model name", "Model Name", "cpu model", "Hardware"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine() or "unknown"


def _cpu_clock_ghz(info: Mapping[str, str]) -> float:
    """The CPU's clock in GHz: the OS's maximum frequency, else the model name's
    '@ 2.80GHz', else the current 'cpu MHz'; 0.0 when none is known."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text(
            encoding="utf-8"))
        if khz > 0:
            return round(khz / 1e6, 3)
    except (OSError, ValueError):
        pass
    named = re.search(r"(\d+(?:\.\d+)?)\s*GHz", _cpu_model(info), re.IGNORECASE)
    if named:
        return round(float(named.group(1)), 3)
    try:
        mhz = float(info.get("cpu MHz", "") or 0)
    except ValueError:
        mhz = 0.0
    return round(mhz / 1000, 3) if math.isfinite(mhz) and mhz > 0 else 0.0


def _isa_flags(info: Mapping[str, str]) -> list[str]:
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return sorted(flags & INFERENCE_ISA_FLAGS)


def _machine_cores() -> int:
    """Cores of the machine whose RAM `_total_ram_bytes` counts."""
    if _cgroup_memory_limit() is not None:  # a container: its RAM goes with its own cores
        return max(1, len(_usable_cpus()))
    return max(1, os.cpu_count() or 1, len(_usable_cpus()))


def _total_ram_bytes() -> int:
    """Physical RAM, or the container's memory limit when that is lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        import psutil

        total = psutil.virtual_memory().total
    limit = _cgroup_memory_limit()
    return min(total, limit) if limit is not None else total


def _cgroup_memory_limit() -> int | None:
    """The cgroup (v2 or v1) memory limit in bytes, or None when there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None
