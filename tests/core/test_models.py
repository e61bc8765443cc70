"""The model catalog: resolution, local folders, parameter estimates."""

from __future__ import annotations

import json

import pytest

from metainf.models import (
    ModelError,
    ModelRef,
    config_summary,
    known_models,
    resolve_model,
    vocab_size,
)

TINY = ["llama-tiny", "qwen2-tiny", "phi-tiny", "mistral-tiny", "mixtral-tiny"]
REAL = ["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "phi-2", "mistral-7b", "mixtral-8x7b"]


def test_catalog_lists_tiny_and_real_models():
    assert set(TINY + REAL) <= set(known_models())
    assert known_models() == sorted(known_models())


def test_catalog_name_materialises_a_config_folder(tmp_path):
    ref = resolve_model("llama-tiny", cache_dir=tmp_path)
    assert ref.name == "llama-tiny" and ref.weights == "dummy"
    assert ref.path == (tmp_path / "llama-tiny").resolve()
    written = json.loads((ref.path / "config.json").read_text(encoding="utf-8"))
    assert "_metainf" not in written
    assert written == ref.config
    assert written["architectures"] == ["LlamaForCausalLM"]
    assert (written["hidden_size"], written["num_hidden_layers"], written["num_attention_heads"],
            written["num_key_value_heads"], written["intermediate_size"]) == (256, 4, 4, 4, 688)
    assert written["max_position_embeddings"] == 2048 and written["torch_dtype"] == "bfloat16"
    assert vocab_size(ref) == 32000
    # Idempotent: resolving again leaves the same file and gives an equal ref.
    mtime = (ref.path / "config.json").stat().st_mtime_ns
    assert resolve_model("llama-tiny", cache_dir=tmp_path) == ref
    assert (ref.path / "config.json").stat().st_mtime_ns == mtime
    assert not [p for p in ref.path.iterdir() if p.name != "config.json"]  # no temp files left


def test_catalog_rewrites_a_stale_config(tmp_path):
    folder = tmp_path / "phi-tiny"
    folder.mkdir()
    (folder / "config.json").write_text('{"stale": true}')
    ref = resolve_model("phi-tiny", cache_dir=tmp_path)
    assert json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"] == "phi"
    assert ref.config["partial_rotary_factor"] * 64 == int(ref.config["partial_rotary_factor"] * 64)


def test_unknown_model_lists_the_catalog():
    with pytest.raises(ModelError) as exc:
        resolve_model("gpt-5-tiny")
    text = str(exc.value)
    assert "gpt-5-tiny" in text
    assert all(name in text for name in TINY + REAL)


def test_local_folder_without_and_with_weights(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(folder))
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 1000,
              "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    ref = resolve_model(str(folder))
    assert ref == ModelRef("my-model", folder.resolve(), "dummy", config)
    assert ref.weights == "dummy"
    (folder / "model.safetensors").write_bytes(b"\0")
    assert resolve_model(str(folder)).weights == "real"
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="not a JSON object"):
        resolve_model(str(folder))


def test_vocab_size_needs_one(tmp_path):
    ref = ModelRef("x", tmp_path, "dummy", {"model_type": "llama"})
    with pytest.raises(ModelError, match="vocab_size"):
        vocab_size(ref)


@pytest.mark.parametrize("name,expected", [
    ("llama-3.1-8b", 8.03e9), ("llama-3.1-70b", 70.6e9), ("qwen2.5-7b", 7.62e9),
    ("phi-2", 2.78e9), ("mistral-7b", 7.25e9), ("mixtral-8x7b", 46.7e9),
])
def test_parameter_estimates_match_published_sizes(tmp_path, name, expected):
    summary = config_summary(resolve_model(name, cache_dir=tmp_path).config)
    assert summary["parameters"] == pytest.approx(expected, rel=0.03)


def test_summary_of_moe_and_gqa(tmp_path):
    mixtral = config_summary(resolve_model("mixtral-8x7b", cache_dir=tmp_path).config)
    assert mixtral["num_experts"] == 8 and mixtral["experts_per_token"] == 2
    assert mixtral["active_parameters"] == pytest.approx(12.9e9, rel=0.03)
    llama = config_summary(resolve_model("llama-3.1-8b", cache_dir=tmp_path).config)
    assert llama["active_parameters"] == llama["parameters"]
    assert (llama["family"], llama["num_layers"], llama["hidden_size"]) == ("llama", 32, 4096)
    assert (llama["num_attention_heads"], llama["num_kv_heads"], llama["head_dim"]) == (32, 8, 128)
    assert (llama["max_context"], llama["dtype"], llama["vocab_size"]) == (131072, "bfloat16",
                                                                           128256)
    assert llama["num_experts"] == 0 and llama["experts_per_token"] == 0
    phi = config_summary(resolve_model("phi-2", cache_dir=tmp_path).config)
    assert (phi["family"], phi["head_dim"], phi["max_context"]) == ("phi", 80, 2048)


def test_every_catalog_model_summarises(tmp_path):
    for name in known_models():
        summary = config_summary(resolve_model(name, cache_dir=tmp_path).config)
        assert summary["parameters"] >= summary["active_parameters"] > 0
        assert summary["num_attention_heads"] % summary["num_kv_heads"] == 0
        assert summary["head_dim"] * summary["num_attention_heads"] == summary["hidden_size"]
        json.dumps(summary)


def test_bloom_176b_is_in_the_catalog_for_planning_only():
    from metainf.models import catalog_entry, planning_only

    assert "bloom-176b" in known_models()
    assert planning_only("bloom-176b")
    assert not any(planning_only(name) for name in TINY + REAL)
    assert not planning_only("no-such-model")
    summary = config_summary(catalog_entry("bloom-176b"))
    assert (summary["family"], summary["num_layers"], summary["hidden_size"]) == ("bloom", 70,
                                                                                 14336)
