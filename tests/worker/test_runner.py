"""The cell runner and its metrics, with a hand-written fake engine (no vLLM)."""

from __future__ import annotations

from metainf.methods import method_from_name
from metainf.worker.engines.base import EngineOptions
from metainf.worker.metrics import RequestTrace, RunTrace, run_metrics
from metainf.worker.runner import Cell, CellRunner


class FakeEngine:
    """Counts starts, runs and cache resets; each request yields its tokens one per tick."""

    name = "fake"
    starts = 0

    def __init__(self, fail_on_run: bool = False):
        self.fail_on_run = fail_on_run
        self.resets = 0
        self.runs: list[tuple[int, int, bool]] = []

    def version(self):
        return "1.0"

    def start(self, model, engine_config, options):
        FakeEngine.starts += 1
        self.config = engine_config
        return dict(engine_config)

    def run(self, requests, batch_size, continuous_batching):
        if self.fail_on_run:
            raise MemoryError("out of memory")
        self.runs.append((len(requests), batch_size, continuous_batching))
        traces = [RequestTrace(submitted=0.0, token_times=[0.1 * (k + 1) for k in
                                                           range(r.output_tokens)],
                               output_tokens=r.output_tokens) for r in requests]
        return RunTrace(start=0.0, end=1.0, requests=traces)

    def reset_cache(self):
        self.resets += 1

    def shutdown(self):
        pass


def cell(method="none", batch=2, reps=3, key="k1"):
    return Cell(cell_id="c", model="llama-tiny", method=method_from_name(method),
                workload={"dataset": "synthetic-shared-prefix", "num_prompts": 4,
                          "max_output_tokens": 3, "options": {"prefix_tokens": 8,
                                                               "suffix_tokens": 2}},
                batch_size=batch, repetitions=reps, engine_key=key)


def test_run_metrics_from_traces():
    trace = RunTrace(0.0, 2.0, [RequestTrace(0.0, [0.5, 0.6, 0.8], 3),
                                RequestTrace(1.0, [1.2, 1.3], 2)])
    m = run_metrics(trace)
    assert m["runtime_s"] == 2.0
    assert m["request_throughput"] == 1.0
    assert m["throughput_tok_s"] == 2.5
    assert abs(m["ttft_p50_s"] - 0.35) < 1e-9
    assert abs(m["itl_p50_s"] - 0.1) < 1e-9


def test_runner_reuses_the_warm_engine_and_resets_before_each_run():
    engines = []

    def factory():
        engines.append(FakeEngine())
        return engines[-1]

    runner = CellRunner(factory, EngineOptions())
    out = runner.run(cell(reps=3))
    assert out["status"] == "done" and len(out["runs"]) == 3
    assert out["weights"] == "dummy" and out["engine_start_s"] > 0
    assert engines[0].resets == 4  # warm-up + 3 measured runs
    assert engines[0].runs[0] == (2, 2, False)  # warm-up: one group, not counted
    assert engines[0].runs[1] == (4, 2, False)
    again = runner.run(cell(method="cb", key="k1"))
    assert again["engine_start_s"] == 0.0 and len(engines) == 1
    assert engines[0].resets == 8  # a new shape (cb) warms up once more
    assert engines[0].runs[-1][2] is True
    runner.run(cell(method="pc", key="k2"))
    assert len(engines) == 2 and engines[1].config["enable_prefix_caching"] is True
    assert runner.engine_starts == 2


def test_a_shape_warms_up_once_per_engine():
    """The next round of an interleaved grid (same shape, same engine) skips the warm-up; a
    new engine warms up again."""
    engines = []

    def factory():
        engines.append(FakeEngine())
        return engines[-1]

    runner = CellRunner(factory, EngineOptions())
    runner.run(cell(reps=1))
    runner.run(cell(reps=1))
    assert engines[0].runs == [(2, 2, False), (4, 2, False), (4, 2, False)]
    runner.run(cell(reps=1, key="k2"))
    assert engines[1].runs == [(2, 2, False), (4, 2, False)]


def test_engine_failures_raise_to_the_host():
    runner = CellRunner(lambda: FakeEngine(fail_on_run=True), EngineOptions())
    try:
        runner.run(cell())
    except MemoryError:
        pass
    else:
        raise AssertionError("the runner must not swallow engine failures")
