"""The engine process: a crash, OOM kill or hang fails the cell, never the worker."""

from __future__ import annotations

import json

import pytest

from metainf.methods import method_from_name
from metainf.worker.engine_host import EngineHost
from metainf.worker.engines.base import EngineOptions
from metainf.worker.engines.registry import create_engine
from metainf.worker.runner import Cell

pytestmark = pytest.mark.integration


def cell(key="k"):
    return Cell(cell_id="c1", model="llama-tiny", method=method_from_name("none"),
                workload={"dataset": "synthetic-shared-prefix", "num_prompts": 2,
                          "max_output_tokens": 1, "options": {"prefix_tokens": 4,
                                                               "suffix_tokens": 1}},
                batch_size=2, repetitions=2, engine_key=key)


@pytest.mark.parametrize("engine, status, text", [
    ("fake_engines:KilledEngine", "oom", "killed"),
    ("fake_engines:SegfaultEngine", "failed", "exit code 3"),
    ("fake_engines:RaisingEngine", "oom", "out of memory"),
])
def test_engine_failures_become_a_status(engine, status, text):
    host = EngineHost(engine, EngineOptions())
    try:
        out = host.run(cell(), timeout_s=60)
        assert out["status"] == status
        assert text in out["error"]
        assert host.warm_key == ""
    finally:
        host.close()


def test_a_hung_engine_times_out_and_the_host_recovers():
    host = EngineHost("fake_engines:HangingEngine", EngineOptions())
    try:
        out = host.run(cell(), timeout_s=2)
        assert out["status"] == "timeout"
        assert not host.alive()
    finally:
        host.close()


def test_a_healthy_engine_stays_warm_between_cells():
    host = EngineHost("fake_engines:QuickEngine", EngineOptions())
    try:
        first = host.run(cell(), timeout_s=60)
        assert first["status"] == "done" and len(first["runs"]) == 2
        assert host.warm_key == "k"
        second = host.run(cell(), timeout_s=60)
        assert second["engine_start_s"] == 0.0
        assert host.starts == 1
    finally:
        host.close()


def test_the_engine_runs_on_the_workers_cores_only():
    host = EngineHost("fake_engines:AffinityEngine", EngineOptions(cpus=(0,)))
    try:
        out = host.run(cell(), timeout_s=60)
        assert json.loads(out["engine_config_json"])["affinity"] == [0]
    finally:
        host.close()


def test_unknown_engine_lists_known_ones():
    with pytest.raises(ValueError, match="vllm"):
        create_engine("tgi")


def test_the_host_checks_the_cores_before_each_run_and_reports_the_load():
    host = EngineHost("fake_engines:QuickEngine", EngineOptions(cpus=(0,)))
    try:
        out = host.run(cell(), timeout_s=60)
        loads = json.loads(out["engine_config_json"])["core_load"]
        assert [r["repetition"] for r in loads] == [0, 1]
        for r in loads:
            assert 0.0 <= r["other_load_before"] <= 1.0
            assert 0.0 <= r["other_load_during"] <= 1.0
            # The wait never outlasts a run (0.5 s for this engine) by more than a window.
            assert r["waited_s"] <= 0.5 + 0.3
    finally:
        host.close()
