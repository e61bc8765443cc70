"""Memory fit in Select: what does not fit is never chosen, says why, and follows the margin."""

from __future__ import annotations

import json
import math

import pytest
from synthetic_tables import farm_frame_and_meta, farm_workloads, shared_embedder

from metainf.cli import main as cli_main
from metainf.memory import DEFAULT_MARGIN, GIB, fits, model_memory_from_config
from metainf.models import catalog_entry
from metainf.selector.fit import margin_of
from metainf.selector.query import HardwareOption, SelectionError, SelectQuery
from metainf.selector.selection import select
from metainf.selector.service import request_to_query, selection_to_response
from metainf.selector.table import FARM_MAPPING, PerfTable
from metainf.selector.training import train
from metainf.v1 import farm_pb2

ISSUE_WORKLOAD = {"dataset": "synthetic-sharegpt", "num_prompts": 64, "max_output_tokens": 64,
                  "batch_size": 32}
"""The workload of issue 13's Llama-3.1-70B question."""

T4, H100 = "NVIDIA T4 16GB", "NVIDIA H100 80GB"
LLAMA70 = model_memory_from_config(catalog_entry("llama-3.1-70b"))
TOKENS = 576 + 64
"""Tokens per sequence of synthetic-shared-prefix (512 + 64 prompt tokens, 64 out)."""


def tight(batch: int) -> dict:
    """A workload whose KV cache makes two H100s tight: `batch` sequences of 640 tokens."""
    return {"dataset": "synthetic-shared-prefix", "num_prompts": 128, "max_output_tokens": 64,
            "batch_size": batch}


def boundary_batch(margin: float, devices: int = 2, per_device: float = 80.0) -> int:
    """The largest batch of `tight` that the stated rule lets fit on the devices."""
    room = per_device * devices * (1 - margin) - LLAMA70.weights_gib
    return int(room * GIB // (LLAMA70.kv_bytes_per_token * TOKENS))


def _train(frame, meta):
    return train(PerfTable.from_frame(frame, FARM_MAPPING, meta), None, style="basic", svd_k=4,
                 embedder=shared_embedder(), n_estimators=20, search=False)


@pytest.fixture(scope="module")
def model():
    return _train(*farm_frame_and_meta())


H100X2 = {"profile": {"kind": "gpu", "accelerator": "NVIDIA H100 80GB HBM3",
                      "accelerator_count": 2, "accelerator_memory_gb": 80.0,
                      "cpu_model": "Intel Xeon", "cpu_cores": 26, "ram_gb": 200.0,
                      "isa_flags": ["avx2"]},
          "price_per_hour": 13.0}


@pytest.fixture(scope="module")
def oom_model():
    """Trained on the farm table plus one oom cell: Llama-3.1-70B, batch 16 of the 592-token
    shared-prefix workload, on a class of two 80 GiB H100s."""
    frame, meta = farm_frame_and_meta()
    label = next(k for k in farm_workloads() if k.startswith("synthetic-shared-prefix"))
    oom = {**frame.iloc[0].to_dict(), "model": "llama-3.1-70b", "hardware": "gpu-h100-x2",
           "workload": label, "batch_size": 16, "status": "oom", "runtime_s": math.nan}
    frame.loc[len(frame)] = oom
    meta = {**meta, "hardware": {**meta["hardware"], "gpu-h100-x2": H100X2}}
    return _train(frame, meta)


def ask(trained, *hardware, model="llama-3.1-70b", workload=None, **kw):
    options = tuple(h if isinstance(h, HardwareOption) else HardwareOption(text=h)
                    for h in hardware)
    return select(trained, SelectQuery(model=model, hardware=options,
                                       workload=workload or ISSUE_WORKLOAD, **kw))


def test_70b_never_runs_on_a_t4_and_one_h100_is_too_small(model):
    sel = ask(model, T4, H100)
    assert not sel.feasible and (sel.method, sel.hardware) == ("", "")
    assert "nothing fits in memory" in sel.message
    assert sel.candidates and not any(c.feasible for c in sel.candidates)
    for c in sel.candidates:
        assert c.reason.startswith("does not fit in memory: needs ")
        assert "131.4 GiB of bf16 weights" in c.reason
        has = "has 14.4 GiB usable of 16 GiB" if c.hardware == T4 else \
            "has 72.0 GiB usable of 80 GiB"
        assert has in c.reason, c.reason


def test_four_h100s_fit_and_are_chosen_beside_the_t4(model):
    sel = ask(model, T4, "4x NVIDIA H100 80GB")
    assert sel.feasible and sel.hardware == "4x NVIDIA H100 80GB"
    assert sel.method == sel.candidates[0].method
    four = [c for c in sel.candidates if c.hardware == sel.hardware]
    t4 = [c for c in sel.candidates if c.hardware == T4]
    assert four and all(c.feasible and c.reason == "" and c.count == 4 for c in four)
    assert t4 and all(not c.feasible and "has 14.4 GiB usable of 16 GiB" in c.reason
                      for c in t4)
    # price scales with count: 4 x the catalog's 6.50 per H100 per hour
    assert all(math.isclose(c.cost, 4 * 6.50 * c.predicted / 3600) for c in four)
    assert "too little memory" in sel.message
    # the count field says the same as the text's leading "4x"
    same = ask(model, T4, HardwareOption(text=H100, count=4))
    assert (same.method, same.hardware) == (sel.method, sel.hardware)


def test_two_h100s_follow_the_stated_margin(model):
    assert margin_of(model).margin == DEFAULT_MARGIN  # the table has no oom cell
    edge = boundary_batch(DEFAULT_MARGIN)
    assert edge == 64  # (2 x 80 x 0.9 - 131.4) GiB / (320 KiB x 640 tokens)
    inside = ask(model, "2x NVIDIA H100 80GB", workload=tight(edge))
    assert inside.feasible and inside.hardware == "2x NVIDIA H100 80GB"
    assert inside.memory_margin == DEFAULT_MARGIN
    outside = ask(model, "2x NVIDIA H100 80GB", workload=tight(edge + 1))
    assert not outside.feasible and outside.method == ""
    assert "has 144.0 GiB usable of 2 x 80 GiB (less the 10 % margin)" in \
        outside.candidates[0].reason
    assert "65 sequences x 640 tokens" in outside.candidates[0].reason
    # the issue's own workload fits on two
    assert ask(model, "2x NVIDIA H100 80GB").feasible


def test_oom_rows_raise_the_margin_until_they_are_not_predicted_to_fit(oom_model):
    cal = margin_of(oom_model)
    need = LLAMA70.weights_gib + LLAMA70.kv_bytes_per_token * 16 * (576 + 16) / GIB
    assert fits(need, 160.0, DEFAULT_MARGIN)  # the default margin would have let it run
    assert not fits(need, 160.0, cal.margin)
    assert cal.margin == pytest.approx(math.floor((1 - need / 160) * 100 + 1) / 100)
    assert (cal.oom_cells, cal.raised_by) == (1, 1)
    # the answer follows the calibrated margin: batch 64 no longer fits on two H100s
    sel = ask(oom_model, "2x NVIDIA H100 80GB", workload=tight(64))
    assert sel.memory_margin == cal.margin and not sel.feasible
    assert f"less the {cal.margin * 100:.0f} % margin" in sel.candidates[0].reason
    edge = boundary_batch(cal.margin)
    assert edge < 64 and ask(oom_model, "2x NVIDIA H100 80GB", workload=tight(edge)).feasible


def test_budget_and_memory_reasons_are_told_apart(model):
    free = ask(model, T4, "4x NVIDIA H100 80GB")
    cheapest_fit = min(c.cost for c in free.candidates if c.feasible)
    sel = ask(model, T4, "4x NVIDIA H100 80GB", budget=cheapest_fit / 2)
    assert not sel.feasible and sel.hardware == "4x NVIDIA H100 80GB"  # cheapest that fits
    assert "no candidate fits the budget" in sel.message
    for c in sel.candidates:
        if c.hardware == T4:
            assert c.reason.startswith("does not fit in memory")
        else:
            assert c.reason.startswith("over budget: cost ") and "> budget" in c.reason
    # the T4 is cheaper but never named, even when cost is the objective
    by_cost = ask(model, T4, "4x NVIDIA H100 80GB", objective="cost")
    assert by_cost.hardware == "4x NVIDIA H100 80GB"


def test_a_described_model_is_sized_from_its_text(model):
    sel = select(model, SelectQuery(model_text="a 70B Llama model quantised to int4",
                                    hardware=(HardwareOption(text=T4),
                                              HardwareOption(text=H100)),
                                    workload=ISSUE_WORKLOAD))
    assert sel.feasible and sel.hardware == H100
    assert all("32.6 GiB of int4 weights" in c.reason and "KV cache unknown" in c.reason
               for c in sel.candidates if c.hardware == T4)


def test_known_small_model_still_fits_and_json_shows_reason_and_count(model):
    sel = select(model, SelectQuery(model="llama-tiny",
                                    hardware=(HardwareOption(name="cpu-amd-epyc-2c"),
                                              HardwareOption(name="2x cpu-amd-epyc-2c")),
                                    workload={"dataset": "synthetic-shared-prefix",
                                              "num_prompts": 16, "max_output_tokens": 16,
                                              "batch_size": 8}))
    out = sel.to_dict()
    assert out["feasible"] and out["memory_margin"] == DEFAULT_MARGIN
    for c in out["candidates"]:
        assert c["reason"] == "" and c["feasible"]
        assert ("count" in c) == c["hardware"].startswith("2x ")
    doubled = [c for c in sel.candidates if c.count == 2]
    single = {c.method: c for c in sel.candidates if c.count == 1}
    assert doubled and all(math.isclose(c.cost, 2 * single[c.method].cost) for c in doubled)


@pytest.mark.parametrize("option, needle", [
    (HardwareOption(text=H100, count=0), "count must be between 1 and 64 (got 0)"),
    (HardwareOption(text=H100, count=65), "count must be between 1 and 64 (got 65)"),
    (HardwareOption(text="0x " + H100), "count must be between 1 and 64 (got 0)"),
    (HardwareOption(text="4x " + H100, count=2), "count 2 disagrees with the '4x'"),
])
def test_bad_counts_name_the_field(model, option, needle):
    with pytest.raises(SelectionError) as err:
        ask(model, option)
    assert err.value.field == "hardware" and needle in str(err.value)


def test_the_wire_carries_count_reason_and_margin(model):
    request = farm_pb2.SelectRequest(
        model="llama-3.1-70b", workload_json=json.dumps(ISSUE_WORKLOAD),
        hardware=[farm_pb2.HardwareOption(text=T4), farm_pb2.HardwareOption(text=H100, count=4)])
    query = request_to_query(request)
    assert [o.count for o in query.hardware] == [None, 4]
    resp = selection_to_response(select(model, query))
    assert resp.feasible and resp.hardware == "4x NVIDIA H100 80GB"
    assert resp.memory_margin == pytest.approx(DEFAULT_MARGIN)
    by_hw = {c.hardware: c for c in resp.candidates}
    assert by_hw["4x NVIDIA H100 80GB"].count == 4 and not by_hw["4x NVIDIA H100 80GB"].reason
    assert "does not fit in memory" in by_hw[T4].reason and by_hw[T4].count == 1


def test_cli_select_json_reads_a_leading_nx(model, tmp_path, capsys):
    model.save(tmp_path / "models")
    argv = ["select", "--model-dir", str(tmp_path / "models"), "--model", "llama-3.1-70b",
            "--hardware-text", T4, "--hardware-text", "4x NVIDIA H100 80GB",
            "--workload", json.dumps(ISSUE_WORKLOAD), "--json"]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"method", "hardware", "feasible", "model_version", "candidates"} <= set(out)
    assert out["hardware"] == "4x NVIDIA H100 80GB" and out["feasible"]
    t4 = [c for c in out["candidates"] if c["hardware"] == T4]
    assert t4 and all("does not fit in memory" in c["reason"] and "count" not in c for c in t4)
    assert all(c["count"] == 4 for c in out["candidates"] if c["hardware"] != T4)
    assert cli_main([*argv[:-3], "--hardware", "65x H100", "--workload",
                     json.dumps(ISSUE_WORKLOAD)]) == 2
    assert "--hardware: count must be between 1 and 64" in capsys.readouterr().err
    assert cli_main(argv[:-1]) == 0  # the human table has a column saying why not
    table = capsys.readouterr().out
    assert "why not" in table and "does not fit" in table
