"""Memory fit: weights and KV cache from configs, workload shapes, the fit rule, the margin."""

from __future__ import annotations

import math

import pytest

from metainf.memory import (
    DEFAULT_MARGIN,
    GIB,
    MAX_MARGIN,
    WorkloadShape,
    calibrate_margin,
    check_fit,
    dtype_bytes,
    fits,
    memory_need,
    model_memory,
    model_memory_from_config,
    workload_shape,
)
from metainf.models import catalog_entry, config_summary

LLAMA70 = model_memory_from_config(catalog_entry("llama-3.1-70b"), "llama-3.1-70b")


def test_llama_70b_in_bf16_needs_131_gib_of_weights_and_320_kib_per_token():
    assert LLAMA70.parameters == pytest.approx(70.55e9, rel=1e-3)
    assert LLAMA70.weights_gib == pytest.approx(70.553706496e9 * 2 / GIB)
    assert round(LLAMA70.weights_gib, 1) == 131.4
    # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes
    assert LLAMA70.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 320 * 1024


def test_quantised_config_keeps_embeddings_at_16_bits():
    config = {**catalog_entry("llama-3.1-70b"),
              "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    assert config_summary(config)["quantization"] == "awq-4bit"
    q = model_memory_from_config(config)
    embed = 2 * 128256 * 8192
    assert q.weights_gib == pytest.approx(((70.553706496e9 - embed) * 0.5 + embed * 2) / GIB)
    assert q.weights_gib < LLAMA70.weights_gib / 3
    assert q.kv_bytes_per_token == LLAMA70.kv_bytes_per_token  # the KV cache stays bf16
    assert "quantization" not in config_summary(catalog_entry("llama-3.1-70b"))


@pytest.mark.parametrize("dtype, size", [
    ("torch.bfloat16", 2), ("float16", 2), ("float32", 2), ("fp8", 1), ("float8_e4m3fn", 1),
    ("int8", 1), ("int4", 0.5), ("gptq-4bit", 0.5), ("awq-8bit", 1), ("", None), ("warp", None),
])
def test_dtype_bytes(dtype, size):
    assert dtype_bytes(dtype) == size


def test_summary_from_a_description_sizes_weights_and_leaves_kv_unknown():
    mm = model_memory({"parameters": 7e9, "dtype": "int4"}, "some 7B int4")
    assert mm.weights_gib == pytest.approx(7e9 * 0.5 / GIB)
    assert mm.kv_bytes_per_token is None
    need = memory_need(mm, WorkloadShape(8, 1000))
    assert need.kv_gib is None and need.total_gib == mm.weights_gib
    assert "KV cache unknown" in need.describe()
    assert model_memory({"family": "llama"}) is None


def test_kv_dtype_of_a_method_halves_the_cache():
    fp8 = LLAMA70.with_kv_dtype("fp8")
    assert fp8.kv_bytes_per_token == LLAMA70.kv_bytes_per_token / 2
    assert LLAMA70.with_kv_dtype("auto") is LLAMA70


def test_workload_shape_takes_p90_lengths_and_at_most_the_prompts():
    stats = {"num_prompts": 16, "input_len_p50": 100, "input_len_p90": 400,
             "output_len_p90": 60, "output_len_max": 64}
    shape = workload_shape(stats, 32)
    assert (shape.sequences, shape.tokens_per_sequence) == (16, 460)
    assert shape.basis == "p90 input + p90 output"
    only_cap = workload_shape({"max_output_tokens": 64, "input_len_mean": 10}, 4)
    assert (only_cap.sequences, only_cap.tokens_per_sequence) == (4, 74)
    assert workload_shape(stats, None) is None
    assert workload_shape({"num_prompts": 3}, 8) is None


def test_fit_rule_and_reason_name_the_numbers():
    need = memory_need(LLAMA70, WorkloadShape(32, 429))
    t4 = check_fit(need, 16, 1)
    assert not t4.fits
    reason = t4.reason()
    assert "needs 135.6 GiB" in reason and "131.4 GiB of bf16 weights" in reason
    assert "has 14.4 GiB usable of 16 GiB" in reason and "10 % margin" in reason
    assert check_fit(need, 80, 4).fits and check_fit(need, 80, 4).reason() == ""
    assert "2 x 80 GiB" in check_fit(memory_need(LLAMA70, WorkloadShape(128, 1000)), 80,
                                     2).reason()


def test_fit_boundary_is_memory_times_one_minus_margin():
    assert fits(90.0, 100.0, 0.10)
    assert not fits(90.0 + 1e-9, 100.0, 0.10)
    m = 0.1
    usable = 2 * 80 * (1 - m)
    room_tokens = (usable - LLAMA70.weights_gib) * GIB / LLAMA70.kv_bytes_per_token
    tokens = 640
    inside = int(room_tokens // tokens)
    assert check_fit(memory_need(LLAMA70, WorkloadShape(inside, tokens)), 80, 2, m).fits
    assert not check_fit(memory_need(LLAMA70, WorkloadShape(inside + 1, tokens)), 80, 2,
                         m).fits


def test_calibration_raises_the_margin_past_every_oom_cell():
    assert calibrate_margin([]).margin == DEFAULT_MARGIN
    cal = calibrate_margin([(85.0, 100.0), (50.0, 100.0), None, (95.0, 100.0)])
    # 85/100 fits until the margin passes 15 %: it goes to 16 %
    assert cal.margin == pytest.approx(0.16)
    assert not fits(85.0, 100.0, cal.margin)
    assert (cal.oom_cells, cal.raised_by, cal.unexplained, cal.unsized) == (3, 1, 1, 1)
    assert "16 %" in cal.describe()
    # a cell exactly on a whole percent still ends up predicted not to fit
    exact = calibrate_margin([(87.0, 100.0)])
    assert not fits(87.0, 100.0, exact.margin) and exact.margin == pytest.approx(0.14)
    # every sized oom cell is predicted not to fit after calibration, unless unexplained
    cells = [(n, 100.0) for n in (51.0, 60.5, 72.25, 88.0, 89.99)]
    after = calibrate_margin(cells)
    assert all(not fits(n, m, after.margin) for n, m in cells)
    assert after.margin <= MAX_MARGIN and math.isclose(after.margin, 0.5)
