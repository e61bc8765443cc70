"""The quiet-cores check: other processes' share of a worker's cores, and the bounded wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_engines import QuickEngine

from metainf.methods import method_from_name
from metainf.worker.engines.base import EngineOptions
from metainf.worker.quiet import (
    CoreLoadMeter,
    CpuSample,
    QuietPolicy,
    other_share,
    own_cpu_seconds,
    read_cpu_ticks,
)
from metainf.worker.runner import Cell, CellRunner

STAT = """cpu  900 0 100 1000 0 0 0 0 0 0
cpu0 100 10 20 300 5 1 2 3 0 0
cpu1 400 0 50 100 0 0 0 7 0 0
intr 12345
"""


class FakeMachine:
    """A clock, a sleep, /proc/stat ticks and an own-CPU counter that the test drives:
    other processes add `others` ticks per second of the total, this process `own`."""

    def __init__(self, others: list[float], own: float = 0.0, cores: int = 2):
        self.now = 0.0
        self.others = others  # share of the cores' time, one value per sleep
        self.own = own
        self.cores = cores
        self.busy = self.total = 0.0
        self.own_s = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        share = self.others[min(len(self.sleeps), len(self.others) - 1)]
        self.sleeps.append(seconds)
        ticks = seconds * 100 * self.cores
        self.total += ticks
        self.busy += ticks * share + seconds * 100 * self.own
        self.own_s += seconds * self.own
        self.now += seconds

    def ticks(self, cpus) -> tuple[int, int]:
        return int(self.busy), int(self.total)

    def own_cpu(self, pid: int) -> float:
        return self.own_s


def meter(machine: FakeMachine, policy: QuietPolicy) -> CoreLoadMeter:
    return CoreLoadMeter((0, 1), policy, pid=1, ticks=machine.ticks, own_cpu=machine.own_cpu,
                         clock=machine.clock, sleep=machine.sleep)


def test_proc_stat_busy_counts_user_to_steal_and_only_the_given_cores(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    # cpu0: busy user+nice+system+irq+softirq+steal = 100+10+20+1+2+3; idle+iowait = 305
    assert read_cpu_ticks([0], str(stat)) == (136, 441)
    assert read_cpu_ticks([0, 1], str(stat)) == (136 + 457, 441 + 557)
    assert read_cpu_ticks([5], str(stat)) == (0, 0)
    assert read_cpu_ticks([0], str(tmp_path / "missing")) == (0, 0)


def test_the_share_of_others_leaves_out_this_process_tree():
    before = CpuSample(busy_ticks=0, total_ticks=0, own_cpu_s=0.0, wall=0.0)
    # Two cores for 1 s = 200 ticks; 150 busy, of which 1.0 s (100 ticks) was ours.
    after = CpuSample(busy_ticks=150, total_ticks=200, own_cpu_s=1.0, wall=1.0)
    assert other_share(before, after) == pytest.approx(0.25)
    # Our own time counted beyond the busy ticks (rounding) never makes a negative share.
    assert other_share(before, CpuSample(50, 200, 1.0, 1.0)) == 0.0
    assert other_share(before, before) == 0.0


def test_quiet_cores_are_measured_over_one_window_and_not_waited_for():
    machine = FakeMachine(others=[0.02], own=0.5)
    record = meter(machine, QuietPolicy(threshold=0.1, window_s=0.25)).before_run(5.0)
    assert record["other_load_before"] == pytest.approx(0.02, abs=0.011)
    assert record["waited_s"] == 0.0 and record["quiet"] is True
    assert machine.sleeps == [0.25]


def test_busy_cores_are_waited_for_until_quiet():
    machine = FakeMachine(others=[0.6, 0.6, 0.05])
    record = meter(machine, QuietPolicy(threshold=0.1, window_s=0.25, max_wait_s=3.0)
                   ).before_run(10.0)
    assert record["quiet"] is True
    assert record["other_load_before"] == pytest.approx(0.05, abs=0.011)
    assert record["waited_s"] == pytest.approx(0.5)


def test_the_wait_is_bounded_by_the_policy_and_by_the_last_run():
    machine = FakeMachine(others=[0.9])
    record = meter(machine, QuietPolicy(threshold=0.1, window_s=0.25, max_wait_s=1.0)
                   ).before_run(10.0)
    assert record["quiet"] is False
    assert record["other_load_before"] == pytest.approx(0.9, abs=0.011)
    assert 1.0 <= record["waited_s"] <= 1.25
    short = FakeMachine(others=[0.9])
    record = meter(short, QuietPolicy(threshold=0.1, window_s=0.25, max_wait_s=3.0)
                   ).before_run(0.5)
    assert record["quiet"] is False and 0.5 <= record["waited_s"] <= 0.75


def test_the_load_during_a_run_is_measured_from_the_check_to_its_end():
    machine = FakeMachine(others=[0.0, 0.4])
    m = meter(machine, QuietPolicy(threshold=0.1, window_s=0.25))
    assert m.before_run(1.0)["quiet"] is True
    machine.sleep(2.0)  # the run
    assert m.after_run() == pytest.approx(0.4)


def test_own_cpu_time_includes_child_processes():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.5: pass\n"
                              "print('done', flush=True)\ntime.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done"
        assert own_cpu_seconds(child.pid) >= 0.45
        assert own_cpu_seconds(os.getpid()) >= own_cpu_seconds(child.pid)
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")
def test_a_process_spinning_on_the_cores_is_seen_as_other_load():
    cpu = sorted(os.sched_getaffinity(0))[0]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    # The meter's own tree is another process: the spinner (our child) is not its own.
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.sched_setaffinity(spinner.pid, {cpu})
        m = CoreLoadMeter((cpu,), QuietPolicy(threshold=0.1, window_s=0.5, max_wait_s=0.0),
                          pid=owner.pid)
        record = m.before_run(0.0)
        assert record["other_load_before"] > 0.8 and record["quiet"] is False
        assert record["waited_s"] == 0.0
    finally:
        for proc in (spinner, owner):
            proc.kill()
            proc.wait()


def test_the_runner_records_the_core_load_of_every_measured_run():
    cell = Cell(cell_id="c", model="llama-tiny", method=method_from_name("cb"),
                workload={"dataset": "synthetic-shared-prefix", "num_prompts": 4,
                          "max_output_tokens": 3, "options": {"prefix_tokens": 8,
                                                               "suffix_tokens": 2}},
                batch_size=2, repetitions=3, engine_key="k")
    policy = QuietPolicy(threshold=1.0, window_s=0.01, max_wait_s=0.0)
    out = CellRunner(QuickEngine, EngineOptions(), quiet=policy).run(cell)
    loads = out["core_load"]
    assert [r["repetition"] for r in loads] == [0, 1, 2]
    for r in loads:
        assert 0.0 <= r["other_load_before"] <= 1.0 and 0.0 <= r["other_load_during"] <= 1.0
        assert r["quiet"] is True and r["waited_s"] == 0.0
    # It reaches P's engine_config column without a wire change.
    assert json.loads(out["engine_config_json"])["core_load"] == loads
    # Without a policy there is no check and nothing recorded.
    plain = CellRunner(QuickEngine, EngineOptions()).run(cell)
    assert "core_load" not in plain and "core_load" not in json.loads(
        plain["engine_config_json"])
