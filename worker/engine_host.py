"""A child process that owns the engine, so a crash or OOM fails a cell, not the worker."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import traceback
from typing import Any

from metainf.worker.engines.base import EngineOptions
from metainf.worker.quiet import DEFAULT_QUIET, QuietPolicy
from metainf.worker.runner import Cell, CellRunner

log = logging.getLogger(__name__)


def _classify(exc: BaseException) -> str:
    text = f"{type(exc).__name__} {exc}".lower()
    return "oom" if isinstance(exc, MemoryError) or "out of memory" in text else "failed"


def _host_main(conn, engine_name: str, options: EngineOptions, log_level: int,
               quiet: QuietPolicy | None = None) -> None:
    """Child entry point: serve run requests until told to stop or the pipe closes."""
    os.dup2(2, 1)  # engines log to stdout; stdout belongs to the worker's answer
    sys.stdout = sys.stderr
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s engine-host %(message)s")
    from metainf.worker.engines.registry import create_engine

    if options.cpus and hasattr(os, "sched_setaffinity"):
        # Every thread of the engine (and the processes it spawns) stays on the worker's
        # cores, not only the OpenMP threads VLLM_CPU_OMP_THREADS_BIND places.
        os.sched_setaffinity(0, options.cpus)
    runner = CellRunner(lambda: create_engine(engine_name), options, quiet)
    try:
        while True:
            try:
                kind, payload = conn.recv()
            except EOFError:
                break
            if kind == "stop":
                break
            try:
                conn.send(("ok", runner.run(payload)))
            except Exception as exc:
                log.error("cell %s failed: %s", payload.cell_id, traceback.format_exc())
                runner.close()  # a failed engine is not reused
                conn.send(("error", {"status": _classify(exc),
                                     "error": f"{type(exc).__name__}: {exc}"[:2000]}))
    finally:
        runner.close()


class EngineHost:
    """Parent-side handle of the engine process: run cells with a deadline, restart on death.

    Each measured run is preceded by the quiet-cores check of `quiet` (None: no check).
    """

    def __init__(self, engine_name: str, options: EngineOptions,
                 quiet: QuietPolicy | None = DEFAULT_QUIET):
        self.engine_name = engine_name
        self.options = options
        self.quiet = quiet
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self.warm_key = ""
        self.starts = 0

    def _spawn(self) -> None:
        # The engine imports torch templates in the locale's encoding: UTF-8 whatever it is.
        os.environ.setdefault("PYTHONUTF8", "1")
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_host_main,
            args=(child, self.engine_name, self.options, logging.getLogger().level,
                  self.quiet),
            daemon=False)
        self._proc.start()
        child.close()
        self._conn = parent
        self.warm_key = ""

    def alive(self) -> bool:
        """Whether the engine process is running."""
        return self._proc is not None and self._proc.is_alive()

    def run(self, cell: Cell, timeout_s: float, should_abort=lambda: False) -> dict[str, Any]:
        """Run a cell in the engine process; failures come back as a status, never raise."""
        if not self.alive():
            self._spawn()
        self._conn.send(("run", cell))
        waited = 0.0
        while not self._conn.poll(1.0):
            waited += 1.0
            if not self._proc.is_alive():
                return self._died()
            if waited >= timeout_s or should_abort():
                self.kill()
                if waited >= timeout_s:
                    return {"status": "timeout", "error": f"cell timeout after {waited:.0f} s"}
                return {"status": "timeout", "error": "aborted by the coordinator: the cell "
                                                      "passed its deadline or lost its lease"}
        try:
            kind, payload = self._conn.recv()
        except EOFError:  # the process died while (or instead of) answering
            return self._died()
        if kind == "ok":
            if payload.get("engine_start_s", 0) > 0:
                self.starts += 1
            self.warm_key = cell.engine_key
        else:
            self.warm_key = ""
        return payload

    def _died(self) -> dict[str, Any]:
        self._proc.join(10)
        code = self._proc.exitcode
        self._proc = None
        self.warm_key = ""
        killed = code == -signal.SIGKILL
        return {"status": "oom" if killed else "failed",
                "error": f"engine process died (exit code {code}"
                         f"{': killed, likely out of memory' if killed else ''})"}

    def kill(self) -> None:
        """Kill the engine process and everything it started."""
        if self._proc is not None and self._proc.is_alive():
            import psutil
            try:
                for child in psutil.Process(self._proc.pid).children(recursive=True):
                    child.kill()
            except psutil.Error:
                pass
            self._proc.kill()
            self._proc.join(10)
        self._proc = None
        self.warm_key = ""

    def close(self) -> None:
        """Ask the engine process to stop, then make sure it did."""
        if self.alive():
            try:
                self._conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(30)
        self.kill()
