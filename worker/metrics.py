"""Run metrics from per-request token times, plus peak-memory and energy meters."""

from __future__ import annotations

import glob
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

log = logging.getLogger(__name__)


@dataclass
class RequestTrace:
    """When one request was submitted and when each of its output tokens arrived."""

    submitted: float
    token_times: list[float] = field(default_factory=list)
    output_tokens: int = 0


@dataclass
class RunTrace:
    """One measured run: wall-clock start and end and every request's trace."""

    start: float
    end: float
    requests: list[RequestTrace]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def run_metrics(trace: RunTrace) -> dict[str, float]:
    """runtime, request/token throughput and TTFT/ITL percentiles of a run."""
    runtime = trace.end - trace.start
    ttft = [r.token_times[0] - r.submitted for r in trace.requests if r.token_times]
    itl: list[float] = []
    for r in trace.requests:
        if len(r.token_times) > 1:
            itl.extend(np.diff(r.token_times).tolist())
    out_tokens = sum(r.output_tokens for r in trace.requests)
    return {
        "runtime_s": runtime,
        "request_throughput": len(trace.requests) / runtime if runtime > 0 else 0.0,
        "throughput_tok_s": out_tokens / runtime if runtime > 0 else 0.0,
        "ttft_p50_s": _pct(ttft, 50), "ttft_p99_s": _pct(ttft, 99),
        "itl_p50_s": _pct(itl, 50), "itl_p99_s": _pct(itl, 99),
    }


class MemoryMeter:
    """Samples peak memory during a run: GPU memory used via NVML, else RSS of a process tree."""

    def __init__(self, pid: int, nvml_handles: list | None = None, interval_s: float = 0.05,
                 rescan_s: float = 1.0):
        self.pid = pid
        self.handles = nvml_handles or []
        self.interval_s = interval_s
        self.rescan_s = rescan_s
        self.peak_bytes = 0
        self._procs: list[psutil.Process] = []
        self._scanned = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tree(self) -> list[psutil.Process]:
        """The process tree, listed again at most every rescan_s: listing it reads every
        /proc/*/stat (~9 ms of CPU here), in the process that drives the engine."""
        now = time.monotonic()
        if now - self._scanned >= self.rescan_s:
            try:
                root = psutil.Process(self.pid)
                self._procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._procs = []
            self._scanned = now
        return self._procs

    def _sample(self) -> int:
        if self.handles:
            import pynvml
            return sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles)
        total = 0
        for p in self._tree():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemoryMeter:
        self.peak_bytes = self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._sample())

    @property
    def peak_gb(self) -> float:
        """Peak in GiB."""
        return self.peak_bytes / 2**30


class EnergyMeter:
    """Energy of a run in joules: NVML's energy counter, else Linux RAPL, else unknown."""

    def __init__(self, nvml_handles: list | None = None):
        self.handles = nvml_handles or []
        self.rapl = [p for p in glob.glob("/sys/class/powercap/intel-rapl:*/energy_uj")
                     if _readable(p)]
        self._start: float | None = None
        self.joules: float | None = None

    def _read(self) -> float | None:
        if self.handles:
            import pynvml
            try:
                millijoules = sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                                  for h in self.handles)
                return millijoules / 1e3
            except pynvml.NVMLError:
                return None
        if self.rapl:
            return sum(int(open(p).read()) for p in self.rapl) / 1e6
        return None

    def __enter__(self) -> EnergyMeter:
        self._start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        end = self._read()
        if self._start is not None and end is not None and end >= self._start:
            self.joules = end - self._start


def _readable(path: str) -> bool:
    try:
        with open(path) as fh:
            fh.read()
        return True
    except OSError:
        return False


def nvml_handles() -> list:
    """NVML handles of the visible GPUs; empty where there is no GPU or no NVML."""
    try:
        import pynvml
        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as exc:  # no library, no driver, no device: the CPU case
        log.debug("NVML unavailable: %s", exc)
        return []
