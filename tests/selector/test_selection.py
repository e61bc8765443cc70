"""Budgeted selection: unseen hardware by text, budgets, objectives, and input errors."""

from __future__ import annotations

import math

import pytest
from synthetic_tables import external_table, farm_frame_and_meta, shared_embedder, winner

from metainf.selector.query import HardwareOption, SelectionError, SelectQuery
from metainf.selector.selection import select
from metainf.selector.table import FARM_MAPPING, PerfTable
from metainf.selector.training import train

WORKLOAD = {"Input Output Length": 512, "Batch Size": 16}


@pytest.fixture(scope="module")
def model():
    return train(external_table(), None, style="rich", svd_k=16, embedder=shared_embedder(),
                 n_estimators=200)


def ask(trained, *hardware, **kw):
    kw.setdefault("model", "Llama-2-7b")
    kw.setdefault("workload", WORKLOAD)
    return select(trained, SelectQuery(hardware=tuple(hardware), **kw))


@pytest.mark.parametrize("text, nearest", [
    ("NVIDIA H200 141GB HBM3e", "H100 SXM"),
    ("NVIDIA Tesla T4 16GB GDDR6", "T4"),
])
def test_unseen_hardware_gets_the_winner_of_its_nearest_known(model, text, nearest):
    sel = ask(model, HardwareOption(text=text))
    assert sel.nearest_known_hardware == {text: nearest}
    assert sel.method == winner(nearest)
    assert sel.hardware == text and sel.feasible
    assert {c.method for c in sel.candidates} == {"vllm", "tgi", "trtllm"}


@pytest.mark.parametrize("gpu", ["L4", "A100-80GB"])
def test_known_hardware_winner(model, gpu):
    sel = ask(model, HardwareOption(name=gpu))
    assert sel.method == winner(gpu) and sel.nearest_known_hardware == {}


def test_budget_filters_candidates_and_infeasible_names_the_cheapest(model):
    options = (HardwareOption(name="L4"), HardwareOption(name="H100 SXM"))
    free = ask(model, *options)
    assert len(free.candidates) == 6 and all(c.feasible for c in free.candidates)
    costs = sorted(c.cost for c in free.candidates)
    budget = (costs[0] + costs[1]) / 2  # only the cheapest candidate fits
    tight = ask(model, *options, budget=budget)
    cheapest = min(free.candidates, key=lambda c: c.cost)
    assert tight.feasible and (tight.method, tight.hardware) == (cheapest.method,
                                                                 cheapest.hardware)
    assert [c.feasible for c in tight.candidates].count(True) == 1
    assert all(c.cost <= budget for c in tight.candidates if c.feasible)
    none = ask(model, *options, budget=costs[0] / 2)
    assert not none.feasible
    assert (none.method, none.hardware) == (cheapest.method, cheapest.hardware)
    assert "no candidate fits the budget" in none.message
    assert not any(c.feasible for c in none.candidates)


def test_cost_objective_and_price_override(model):
    options = (HardwareOption(name="L4"), HardwareOption(name="H100 SXM", price_per_hour=0.01))
    sel = ask(model, *options, objective="cost")
    assert sel.hardware == "H100 SXM"
    h100 = [c for c in sel.candidates if c.hardware == "H100 SXM"]
    assert all(math.isclose(c.cost, 0.01 * c.predicted / 3600) for c in h100)


def test_named_methods_restrict_candidates(model):
    sel = ask(model, HardwareOption(name="L4"), methods=("tgi", "trtllm"))
    assert {c.method for c in sel.candidates} == {"tgi", "trtllm"}


def test_json_contract(model):
    out = ask(model, HardwareOption(text="NVIDIA H200 141GB HBM3e")).to_dict()
    for key in ("method", "hardware", "feasible", "model_version", "candidates", "confidence",
                "out_of_distribution", "ood_axes"):
        assert key in out
    assert set(out["candidates"][0]) == {"method", "hardware", "predicted", "cost", "feasible",
                                         "reason", "interval"}
    assert out["candidates"][0]["reason"] == "" and out["memory_margin"] == 0.1
    low, high = out["candidates"][0]["interval"]
    assert low < out["candidates"][0]["predicted"] < high
    assert 0.0 <= out["confidence"] <= 1.0


@pytest.mark.parametrize("kw, field", [
    ({"budget": -1.0}, "budget"),
    ({"budget": float("nan")}, "budget"),
    ({"methods": ("warp-drive",)}, "methods"),
    ({"model": ""}, "model"),
    ({"workload": "{not json"}, "workload"),
    ({"workload": {"Batch Size": 16}}, "workload"),
    ({"workload": {**WORKLOAD, "Color": "red"}}, "workload"),
    ({"workload": [1, 2]}, "workload"),
    ({"objective": "fastest"}, "objective"),
])
def test_bad_input_names_the_field(model, kw, field):
    with pytest.raises(SelectionError) as err:
        ask(model, HardwareOption(name="L4"), **kw)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}:")


def test_no_hardware_and_unpriced_hardware_under_budget(model):
    with pytest.raises(SelectionError, match="^hardware:"):
        ask(model)
    with pytest.raises(SelectionError, match="no price known"):
        ask(model, HardwareOption(text="Acme X1, 64 GB, 2 TB/s"), budget=1.0)


@pytest.fixture(scope="module")
def farm_model():
    df, meta = farm_frame_and_meta()
    return train(PerfTable.from_frame(df, FARM_MAPPING, meta), None, style="cot",
                 embedder=shared_embedder(), n_estimators=150)


def test_farm_select_by_label_and_by_spec(farm_model):
    label = next(k for k in farm_model.featurizer.describer_.meta["workloads"]
                 if k.startswith("synthetic-shared-prefix"))
    by_label = select(farm_model, SelectQuery(
        model="llama-tiny", hardware=(HardwareOption(name="cpu-amd-epyc-2c"),),
        workload={"workload": label, "batch_size": 8}))
    by_spec = select(farm_model, SelectQuery(
        model="llama-tiny", hardware=(HardwareOption(name="cpu-amd-epyc-2c"),),
        workload={"dataset": "synthetic-shared-prefix", "num_prompts": 16,
                  "max_output_tokens": 16, "batch_size": 8}))
    assert by_label.method == by_spec.method and "pc" in by_label.method
    assert [c.predicted for c in by_label.candidates] == [c.predicted
                                                          for c in by_spec.candidates]


def test_farm_select_unseen_gpu_and_new_workload(farm_model):
    sel = select(farm_model, SelectQuery(
        model="llama-tiny", hardware=(HardwareOption(text="NVIDIA H200 141GB HBM3e"),),
        workload={"dataset": "synthetic-shared-prefix", "num_prompts": 32,
                  "max_output_tokens": 16, "batch_size": 8}, budget=1.0))
    assert sel.nearest_known_hardware["NVIDIA H200 141GB HBM3e"] == "gpu-nvidia-l4-1x"
    assert sel.feasible and {c.method for c in sel.candidates} == {"none", "cb", "pc",
                                                                   "cb+pc"}
    with pytest.raises(SelectionError, match="^workload:.*batch_size"):
        select(farm_model, SelectQuery(model="llama-tiny",
                                       hardware=(HardwareOption(name="cpu-amd-epyc-2c"),),
                                       workload={"workload": "nope"}))
    with pytest.raises(SelectionError, match="^workload:"):
        select(farm_model, SelectQuery(model="llama-tiny",
                                       hardware=(HardwareOption(name="cpu-amd-epyc-2c"),),
                                       workload={"dataset": "no-such", "batch_size": 8}))


def test_unseen_hardware_ranks_like_its_nearest_at_its_own_level(model):
    h200 = HardwareOption(text="NVIDIA H200 141GB HBM3e")
    both = ask(model, h200, HardwareOption(name="H100 SXM"))
    order = {hw: [c.method for c in sorted(both.candidates, key=lambda c: c.predicted)
                  if c.hardware == hw] for hw in ("H100 SXM", h200.text)}
    assert order[h200.text] == order["H100 SXM"]
    pure = ask(model, h200, unseen="model")
    assert pure.nearest_known_hardware == {h200.text: "H100 SXM"}
    with pytest.raises(SelectionError, match="^unseen:"):
        ask(model, h200, unseen="guess")
