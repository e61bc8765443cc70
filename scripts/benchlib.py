"""Shared pieces of the benchmark scripts: machine facts, summaries, a coordinator process.

The benchmark scripts (bench_select.py, bench_fidelity.py, bench_campaign.py) import this
module from their own folder. Every figure they print carries the machine it was taken
on; on a shared, noisy machine compare only ratios measured side by side in one run.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (scripts/..)."""

log = logging.getLogger("bench")


def setup_logging(verbose: bool = False) -> None:
    """Logs to stderr; stdout carries only the figures."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def claim_stdout():
    """Keep stdout for figures: return a stream on the real stdout, send fd 1 to stderr.

    vLLM logs to stdout, in this process and in the engine processes it starts (they
    inherit fd 1); after this call their output lands on stderr.
    """
    sys.stdout.flush()
    figures = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return figures


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """One line naming the machine: CPU model, cores usable/total, RAM, load, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        ram = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        ram = "RAM unknown"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"machine: {cpu_model()}, {usable}/{os.cpu_count()} cores usable, {ram}, "
            f"load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min), "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def busy_note() -> str | None:
    """A warning line when other work already keeps the cores busy (figures are then noisy)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if load > 0.5 * cores:
        return (f"note: load average {load:.1f} on {cores} core(s) before starting: times "
                "include waiting for a CPU; compare only ratios taken side by side here")
    return None


def header_lines() -> list[str]:
    """The first lines of every benchmark's figures: the machine, and the busy note when
    other work already keeps the cores busy."""
    return [machine_line(), *filter(None, [busy_note()])]


def run_workdir(given: Path | None, name: str) -> Path:
    """The folder a benchmark keeps its files in: `given` (created if needed), or a new
    temporary folder named after the benchmark."""
    workdir = given or Path(tempfile.mkdtemp(prefix=f"{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def load_line() -> str:
    """The load average now (to print after a run: was the machine busy?)."""
    load = os.getloadavg()
    return f"load avg at end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min)"


@dataclass(frozen=True)
class Summary:
    """Median and spread of repeated measurements."""

    n: int
    median: float
    lo: float
    hi: float
    cv: float
    """Coefficient of variation (stdev / mean); 0 for a single value."""

    def fmt(self, unit: str = "", digits: int = 3) -> str:
        """'median [min..max] cv x% (n=N)'."""
        if self.n == 0:
            return "n/a"
        return (f"{self.median:.{digits}g}{unit} [{self.lo:.{digits}g}..{self.hi:.{digits}g}] "
                f"cv {100 * self.cv:.1f}% (n={self.n})")


def summarize(values: Sequence[float]) -> Summary:
    """Median, min, max and coefficient of variation of values."""
    vals = [float(v) for v in values]
    if not vals:
        return Summary(0, float("nan"), float("nan"), float("nan"), float("nan"))
    mean = statistics.fmean(vals)
    cv = statistics.stdev(vals) / mean if len(vals) > 1 and mean else 0.0
    return Summary(len(vals), statistics.median(vals), min(vals), max(vals), cv)


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (NaN for no values)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(extra_pythonpath: Sequence[str] = ()) -> dict[str, str]:
    """Environment for child processes: offline hub, optional extra PYTHONPATH entries."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if extra_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*extra_pythonpath, env.get("PYTHONPATH", "")])
    return env


def wait_serving(address: str, timeout_s: float = 120.0,
                 proc: subprocess.Popen | None = None) -> float:
    """Wait until the coordinator's health check says SERVING; return seconds waited."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    t0 = time.monotonic()
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"coordinator exited with code {proc.returncode} before SERVING")
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                    health_pb2.HealthCheckResponse.SERVING:
                return time.monotonic() - t0
        except grpc.RpcError:
            pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"coordinator at {address} not SERVING after {timeout_s:.0f} s")
        time.sleep(0.1)


def start_coordinator(workdir: Path, model_dir: Path | None = None,
                      extra: Sequence[str] = ()) -> tuple[subprocess.Popen, str]:
    """Start `metainf coordinator` as a child process on a free loopback port."""
    port = free_port()
    cmd = [sys.executable, "-m", "metainf.cli", "coordinator", "--db", str(workdir / "farm.db"),
           "--port", str(port), *extra]
    if model_dir is not None:
        cmd += ["--model-dir", str(model_dir)]
    logf = open(workdir / "coordinator.log", "a")
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL, stderr=logf)
    address = f"127.0.0.1:{port}"
    wait_serving(address, proc=proc)
    log.info("coordinator pid %d on %s (log %s)", proc.pid, address, workdir / "coordinator.log")
    return proc, address


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 20.0) -> None:
    """SIGTERM a child we started, then SIGKILL it if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
