"""Hand-written engines with failure knobs, loaded by the engine host as 'fake_engines:Name'."""

from __future__ import annotations

import os
import signal
import time

from metainf.worker.metrics import RequestTrace, RunTrace


class _Base:
    name = "fake"

    def version(self):
        return "0.0-fake"

    def start(self, model, engine_config, options):
        return dict(engine_config)

    def reset_cache(self):
        pass

    def shutdown(self):
        pass

    def run(self, requests, batch_size, continuous_batching):
        return RunTrace(0.0, 0.5, [RequestTrace(0.0, [0.1], 1) for _ in requests])


class QuickEngine(_Base):
    """Answers at once."""


class AffinityEngine(_Base):
    """Reports the cores its process may run on as part of its engine configuration."""

    def start(self, model, engine_config, options):
        return {**engine_config, "affinity": sorted(os.sched_getaffinity(0))}


class KilledEngine(_Base):
    """Dies the way the kernel's OOM killer kills: SIGKILL."""

    def run(self, requests, batch_size, continuous_batching):
        os.kill(os.getpid(), signal.SIGKILL)


class SegfaultEngine(_Base):
    """Exits abruptly with a non-zero code."""

    def run(self, requests, batch_size, continuous_batching):
        os._exit(3)


class HangingEngine(_Base):
    """Never finishes a run."""

    def run(self, requests, batch_size, continuous_batching):
        time.sleep(3600)


class RaisingEngine(_Base):
    """Raises an error the engine could report itself."""

    def run(self, requests, batch_size, continuous_batching):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")


class SlowEngine(_Base):
    """Takes a fixed time per run, like a small real cell (for chaos tests)."""

    seconds = 0.2

    def run(self, requests, batch_size, continuous_batching):
        t0 = time.perf_counter()
        time.sleep(self.seconds)
        return RunTrace(t0, time.perf_counter(), [RequestTrace(t0, [t0 + 0.01], 1)
                                                  for _ in requests])
