"""Running one cell: keep the right engine warm, warm up, reset caches, check the cores are
quiet, measure repetitions."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metainf.methods import Method, method_from_cell
from metainf.models import resolve_model, vocab_size
from metainf.worker.engines.base import Engine, EngineOptions
from metainf.worker.metrics import EnergyMeter, MemoryMeter, nvml_handles, run_metrics
from metainf.worker.quiet import CoreLoadMeter, QuietPolicy
from metainf.workloads import WorkloadSpec, build_requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """What the runner needs of a leased cell (a CellSpec as plain data)."""

    cell_id: str
    model: str
    method: Method
    workload: dict[str, Any]
    batch_size: int
    repetitions: int
    engine_key: str

    @classmethod
    def from_spec(cls, spec) -> Cell:
        """Build from a farm_pb2.CellSpec."""
        return cls(spec.cell_id, spec.model, method_from_cell(spec),
                   json.loads(spec.workload_json), spec.batch_size, spec.repetitions,
                   spec.engine_key)


class CellRunner:
    """Runs cells one after another, reusing the warm engine when the engine key matches.

    With a quiet policy, each measured run is preceded by the quiet-cores check and the
    other processes' load before and during it is reported (`core_load`, one entry per run,
    also inside `engine_config_json` so that it reaches P without a wire change).
    """

    def __init__(self, engine_factory: Callable[[], Engine], options: EngineOptions,
                 quiet: QuietPolicy | None = None):
        self.engine_factory = engine_factory
        self.options = options
        self.quiet = quiet
        self.engine: Engine | None = None
        self.engine_key = ""
        self.engine_config: dict[str, Any] = {}
        self.weights = ""
        self.engine_starts = 0
        self._last_run_s: dict[tuple, float] = {}
        """Per shape this engine has run (warmed up): seconds of its latest run."""
        self._nvml = nvml_handles() if options.device == "gpu" else []

    def _ensure_engine(self, cell: Cell) -> float:
        """Start the cell's engine unless it is already warm; return seconds spent starting."""
        if self.engine is not None and self.engine_key == cell.engine_key:
            return 0.0
        self.close()
        model = resolve_model(cell.model)
        t0 = time.perf_counter()
        engine = self.engine_factory()
        started_with = engine.start(model, cell.method.engine_config(), self.options)
        self.engine, self.engine_key = engine, cell.engine_key
        self.engine_config, self.weights = started_with, model.weights
        self.engine_starts += 1
        self._last_run_s = {}
        self._vocab = vocab_size(model)
        return time.perf_counter() - t0

    def run(self, cell: Cell) -> dict[str, Any]:
        """Run a cell's repetitions; return the report fields (status, runs, engine facts)."""
        start_s = self._ensure_engine(cell)
        engine = self.engine
        spec = WorkloadSpec(**cell.workload)
        requests = build_requests(spec, self._vocab)
        cb = cell.method.continuous_batching
        meter = CoreLoadMeter(self.options.cpus, self.quiet) if self.quiet else None
        # One uncounted warm-up run of one group before the measured repetitions, once per
        # shape (workload, batch size, cb) per engine: the next round of an interleaved
        # grid finds its shape already warm.
        shape = (json.dumps(cell.workload, sort_keys=True), cell.batch_size, cb)
        group = requests[:cell.batch_size]
        if shape not in self._last_run_s:
            engine.reset_cache()
            t0 = time.perf_counter()
            engine.run(group, cell.batch_size, cb)
            # The quiet-cores wait is bounded by about one run (estimated from the warm-up).
            self._last_run_s[shape] = ((time.perf_counter() - t0) * len(requests)
                                       / max(len(group), 1))
        last_run_s = self._last_run_s[shape]
        runs, core_load = [], []
        for rep in range(cell.repetitions):
            engine.reset_cache()
            load = meter.before_run(last_run_s) if meter else None
            with MemoryMeter(os.getpid(), self._nvml) as mem, EnergyMeter(self._nvml) as energy:
                trace = engine.run(requests, cell.batch_size, cb)
            metrics = run_metrics(trace)
            metrics.update(repetition=rep, status="done", peak_mem_gb=mem.peak_gb,
                           energy_j=energy.joules)
            runs.append(metrics)
            last_run_s = self._last_run_s[shape] = metrics["runtime_s"]
            if load is not None:
                core_load.append({"repetition": rep, **load,
                                  "other_load_during": meter.after_run()})
            log.info("cell %s rep %d: %.3f s%s", cell.cell_id, rep, metrics["runtime_s"],
                     f"; other load before {load['other_load_before']:.0%}, during "
                     f"{core_load[-1]['other_load_during']:.0%}" if load else "")
        config = dict(self.engine_config)
        if core_load:
            config["core_load"] = core_load
        out = {
            "status": "done", "error": "", "runs": runs, "engine": engine.name,
            "engine_version": engine.version(), "weights": self.weights,
            "engine_config_json": json.dumps(config, sort_keys=True),
            "engine_start_s": start_s,
        }
        if core_load:
            out["core_load"] = core_load
        return out

    def close(self) -> None:
        """Shut the warm engine down."""
        if self.engine is not None:
            self.engine.shutdown()
        self.engine, self.engine_key = None, ""
