"""Hand-written engines with failure knobs, loaded by the engine host as 'fake_engines:Name'."""

from __future__ import annotations

import os
import random
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


class MethodEngine(_Base):
    """A run's length follows the method, as a real engine's would on a shared-prefix
    workload: continuous batching x 0.25, prefix caching x 0.7 (none 0.8 s of simulated
    time, cb+pc 0.14 s); every request gets its own output tokens, so the result is
    plausible to the coordinator. No sleeping."""

    base_s = 0.8

    def start(self, model, engine_config, options):
        self.prefix_caching = bool(engine_config.get("enable_prefix_caching"))
        return dict(engine_config)

    def run(self, requests, batch_size, continuous_batching):
        runtime = self.base_s * (0.25 if continuous_batching else 1.0) * (
            0.7 if self.prefix_caching else 1.0)
        traces = []
        for r in requests:
            n = max(int(r.output_tokens), 1)
            traces.append(RequestTrace(0.0, [runtime * (i + 1) / (n + 1) for i in range(n)], n))
        return RunTrace(0.0, runtime, traces)


class BatchEngine(MethodEngine):
    """Methods differ by 1-2 % below batch size 16, less than runs vary (3 % at random);
    from 16 on they differ as
    MethodEngine's do. A farm that measured only small batches cannot know the big one."""

    def start(self, model, engine_config, options):
        self._rng = random.Random(0)  # the same noise every run of the test
        return super().start(model, engine_config, options)

    def run(self, requests, batch_size, continuous_batching):
        if batch_size >= 16:
            return super().run(requests, batch_size, continuous_batching)
        runtime = self.base_s * self._rng.uniform(0.97, 1.03) * (
            0.99 if continuous_batching else 1.0) * (0.99 if self.prefix_caching else 1.0)
        traces = [RequestTrace(0.0, [runtime * (i + 1) / (max(int(r.output_tokens), 1) + 1)
                                     for i in range(max(int(r.output_tokens), 1))],
                               max(int(r.output_tokens), 1)) for r in requests]
        return RunTrace(0.0, runtime, traces)
