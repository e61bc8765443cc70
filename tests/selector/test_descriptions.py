"""Descriptions: the four styles per axis, numeric facts, free text, table describers."""

from __future__ import annotations

import math

import pytest
from synthetic_tables import EXTERNAL_MAPPING, FARM_MODELS, farm_frame_and_meta

from metainf.selector.descriptions import (
    STYLES,
    Entity,
    TableDescriber,
    hardware_entity_from_text,
    method_entity,
    model_entity,
    numeric_facts,
)
from metainf.selector.table import FARM_MAPPING

SUMMARY_8B = {"family": "llama", "parameters": 8.0e9, "active_parameters": 8.0e9,
              "num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
              "num_kv_heads": 8, "head_dim": 128, "intermediate_size": 14336,
              "num_experts": 0, "experts_per_token": 0, "max_context": 131072,
              "dtype": "bfloat16", "vocab_size": 128256}


def test_model_styles_grow_from_identity_to_reasoning():
    e = model_entity("Llama-3.1-8B", SUMMARY_8B)
    texts = {s: e.text(s) for s in STYLES}
    assert texts["onehot"] == "Llama-3.1-8B"
    assert texts["basic"] == "Model: Llama-3.1-8B"
    assert texts["rich"].startswith("Model: Llama-3.1-8B.")
    assert "Layers: 32" in texts["rich"] and "KV heads: 8" in texts["rich"]
    assert "Implications" not in texts["rich"]
    assert texts["cot"].startswith(texts["rich"])
    assert "memory-bandwidth bound" in texts["cot"] and "KV cache" in texts["cot"]


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="known: onehot, basic, rich, cot"):
        model_entity("m", SUMMARY_8B).text("fancy")


def test_model_facts_and_moe():
    facts = numeric_facts("model", model_entity("Llama-3.1-8B", SUMMARY_8B))
    assert facts["log10_parameters"] == pytest.approx(9.903, abs=1e-3)
    assert facts["num_layers"] == 32 and facts["gqa_ratio"] == 4
    assert facts["kv_kb_per_token"] == pytest.approx(2 * 32 * 8 * 128 * 2 / 1024)
    moe = model_entity("Mixtral-8x7B", {**SUMMARY_8B, "num_experts": 8, "experts_per_token": 2,
                                        "parameters": 46.7e9, "active_parameters": 12.9e9})
    assert "Mixture of experts: 8 experts, 2 per token" in moe.text("rich")
    assert "only some experts run" in moe.text("cot")


def test_model_from_name_alone_parses_its_size():
    e = model_entity("meta-llama/Llama-2-13b-hf")
    assert e.facts["log10_parameters"] == pytest.approx(math.log10(13e9))
    assert "Architecture family: llama" in e.text("rich")


def test_hardware_from_catalog_and_free_text():
    h100 = hardware_entity_from_text("H100 SXM")
    rich = h100.text("rich")
    assert "Memory bandwidth: 3.35 TB/s" in rich and "Architecture: Hopper" in rich
    assert h100.facts["bandwidth_tbs"] == 3.35 and h100.facts["is_cpu"] == 0
    assert "FLOP per byte" in h100.text("cot")
    spec = "Acme X1, 64 GB HBM, 2 TB/s, 500 TFLOPS bf16"
    acme = hardware_entity_from_text(spec)
    assert acme.text("basic") == f"Hardware: {spec}"
    assert f"Description: {spec}" in acme.text("rich")
    assert acme.facts["memory_gb"] == 64 and acme.facts["bf16_tflops"] == 500


def test_a_gpu_with_fp16_peak_only_has_its_compute_to_bandwidth_ratio():
    t4 = hardware_entity_from_text("Tesla T4")
    assert t4.facts["flops_per_byte"] == pytest.approx(65 / 0.32)
    assert "FLOP per byte" in t4.text("cot")


def test_method_descriptions():
    pc = method_entity("pc")
    assert "Prefix caching: on" in pc.text("rich")
    assert "Continuous batching: off" in pc.text("rich")
    assert "shared prefixes" in pc.text("cot") or "share prefixes" in pc.text("cot")
    assert pc.facts == {"cb": 0.0, "pc": 1.0, "cp": 0.0, "n_engine_options": 0.0}
    other = method_entity("tensorrt-llm")
    assert other.text("basic") == "Method: tensorrt-llm" and other.facts == {}


def test_external_workload_columns_become_text_and_facts():
    d = TableDescriber(EXTERNAL_MAPPING, {})
    e = d.entity("workload", (1024, 64))
    assert "Input Output Length: 1024; Batch Size: 64" in e.text("rich")
    assert e.facts == {"col:Input Output Length": 1024.0, "col:Batch Size": 64.0}
    assert "Batch Size 64" in e.text("cot")


def test_farm_workload_uses_statistics_from_meta():
    _, meta = farm_frame_and_meta()
    d = TableDescriber(FARM_MAPPING, meta)
    label = next(k for k in meta["workloads"] if k.startswith("synthetic-shared-prefix"))
    e = d.entity("workload", (label, 8))
    rich = e.text("rich")
    assert "Batch size: 8" in rich and "Shared prefix: 89% of prompt tokens" in rich
    assert e.facts["shared_prefix_ratio"] == pytest.approx(512 / 576)
    assert "prefix caching can skip" in e.text("cot")
    model = d.entity("model", "llama-tiny")
    assert model.facts["hidden_size"] == FARM_MODELS["llama-tiny"]["hidden_size"]
    cpu = d.entity("hardware", "cpu-amd-epyc-2c")
    assert "CPU cores: 2" in cpu.text("rich") and cpu.facts["is_cpu"] == 1.0
    assert d.price("gpu-nvidia-l4-1x") == 0.8


def test_entity_round_trip():
    e = hardware_entity_from_text("NVIDIA L4")
    assert Entity.from_dict(e.to_dict()) == e
