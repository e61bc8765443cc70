"""Answers say how far to trust them: intervals, out-of-distribution axes, confidence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from synthetic_tables import shared_embedder

from metainf.selector.query import HardwareOption, SelectionError, SelectQuery
from metainf.selector.selection import select
from metainf.selector.table import PerfTable
from metainf.selector.training import train
from metainf.selector.trust import (
    OOD_MAX_FACTOR,
    OOD_SINGLE,
    OOD_WIDEN,
    AxisDistance,
    axis_threshold,
    confidence,
    widened,
    widening,
)

REFERENCE_P = Path(__file__).resolve().parents[2] / "examples" / "reference-p" / "p.parquet"
WORKLOAD = {"dataset": "synthetic-shared-prefix", "num_prompts": 24, "max_output_tokens": 16,
            "batch_size": 8}


@pytest.fixture(scope="module")
def cpu_only_model():
    """MetaInf trained on a P that measured two CPU classes and nothing else."""
    return train(PerfTable.load(REFERENCE_P), None, embedder=shared_embedder())


def test_an_unseen_gpu_is_out_of_distribution_with_a_much_wider_interval(cpu_only_model):
    known = sorted(cpu_only_model.known["hardware"])[0]
    gpu = select(cpu_only_model, SelectQuery(
        model="llama-tiny", workload=WORKLOAD,
        hardware=(HardwareOption(text="NVIDIA H200 141GB HBM3e, 4.8 TB/s"),)))
    cpu = select(cpu_only_model, SelectQuery(model="llama-tiny", workload=WORKLOAD,
                                             hardware=(HardwareOption(name=known),)))
    assert gpu.out_of_distribution and gpu.ood_axes == ["hardware"]
    hw = [d for d in gpu.distances if d["axis"] == "hardware"][0]
    assert hw["nearest"] in cpu_only_model.known["hardware"] and hw["distance"] > hw["threshold"]
    assert "out of distribution on hardware" in gpu.message
    assert not cpu.out_of_distribution and cpu.ood_axes == []

    def ratio(selection):
        low, high = selection.candidates[0].interval
        assert low < selection.candidates[0].predicted < high
        return high / low

    # the unseen GPU's interval at least 3x as wide (high / low) as the measured CPU's,
    # and at least twice as wide in log cost, where the interval is symmetric
    assert ratio(gpu) >= 3 * ratio(cpu)
    assert math.log(ratio(gpu)) >= 2 * math.log(ratio(cpu))
    assert 0.0 <= gpu.confidence <= 1.0 and 0.0 <= cpu.confidence <= 1.0
    # its ranking is extrapolated as far: the choice is less sure than on the measured CPU
    assert gpu.confidence < cpu.confidence


def test_a_budget_reads_the_upper_end_unless_the_risk_is_taken(cpu_only_model):
    known = sorted(cpu_only_model.known["hardware"])[0]
    base = {"model": "llama-tiny", "workload": WORKLOAD,
            "hardware": (HardwareOption(name=known, price_per_hour=1.0),)}
    free = select(cpu_only_model, SelectQuery(**base))
    best = free.candidates[0]
    low, high = best.interval
    # a budget between the point cost and the cost at the upper end of the interval
    budget = best.cost * (1 + (high / best.predicted - 1) / 2)
    upper = select(cpu_only_model, SelectQuery(**base, budget=budget))
    expected = select(cpu_only_model, SelectQuery(**base, budget=budget, risk="expected"))
    by_method = {c.method: c for c in upper.candidates}
    assert not by_method[best.method].feasible
    assert "upper end of its interval" in by_method[best.method].reason
    assert {c.method: c for c in expected.candidates}[best.method].feasible
    with pytest.raises(SelectionError, match="risk"):
        select(cpu_only_model, SelectQuery(**base, risk="yolo"))


def test_an_interval_widens_with_how_far_the_query_lies():
    near = AxisDistance("hardware", "cpu", 0.5, 1.0)
    just = AxisDistance("hardware", "cpu", 1.0 + 1e-9, 1.0)
    far = AxisDistance("model", "llama", math.e ** 2, 1.0)
    assert widening([near]) == 1.0
    assert widening([near, just]) == pytest.approx(OOD_WIDEN)
    assert widening([just, far]) == pytest.approx(3 * OOD_WIDEN)
    assert widened(0.2, [near]) == 0.2
    assert widened(0.2, [far]) == pytest.approx(0.2 * 3 * OOD_WIDEN)
    # no farther than a factor OOD_MAX_FACTOR either way, never narrower than calibrated
    very_far = AxisDistance("hardware", "cpu", 1e6, 1.0)
    assert widened(0.2, [very_far]) == pytest.approx(math.log(OOD_MAX_FACTOR))
    assert widened(5.0, [very_far]) == 5.0


def test_thresholds_and_confidence_by_hand():
    assert axis_threshold(np.zeros((1, 3))) == OOD_SINGLE
    known = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    assert axis_threshold(known) == pytest.approx(1.5 * 4.0)
    costs = np.log(np.array([1.0, 2.0, 4.0]))
    option = np.array([0, 0, 1])
    tight = confidence(costs, np.full(3, 1e-6), 1e-6, option, 0, np.ones(3, dtype=bool))
    loose = confidence(costs, np.full(3, 2.0), 2.0, option, 0, np.ones(3, dtype=bool))
    assert tight == 1.0 and 0.3 < loose < 1.0
    assert confidence(costs, np.ones(3), 1.0, option, 2, np.array([True, True, False])) == 0.0
