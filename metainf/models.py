"""The model catalog: architecture configs by name, local model folders, config summaries."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metainf.memory import quantization_of

log = logging.getLogger(__name__)

CATALOG_DIR = Path(__file__).parent / "model_configs"
DEFAULT_CACHE_DIR = Path("~/.cache/metainf/models")
META_KEY = "_metainf"
"""Top-level key of a catalog file holding our notes; never written into config.json."""

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")

NON_GATED_MLP = frozenset({"phi", "gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "falcon",
                           "bloom", "starcoder2", "mpt"})
"""Model types whose MLP is up/down (2 matrices) rather than gated (3 matrices)."""

LAYERNORM_BIAS = frozenset({"phi", "gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "falcon",
                            "bloom", "starcoder2"})
"""Model types with biased LayerNorm and biased linear layers (others: RMSNorm, no bias)."""


class ModelError(ValueError):
    """A model name or folder that cannot be resolved."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a folder usable as vLLM's `model`, its weights kind and config."""

    name: str
    path: Path
    weights: Literal["dummy", "real"]
    config: dict[str, Any] = field(compare=False, hash=False, repr=False)


def known_models() -> list[str]:
    """Names of the catalog's models, sorted."""
    return sorted(p.stem for p in CATALOG_DIR.glob("*.json"))


def catalog_entry(name: str) -> dict[str, Any]:
    """The catalog file of a model: its config.json content plus the `_metainf` notes."""
    path = CATALOG_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelError(f"unknown model {name!r}; known: {', '.join(known_models())} "
                         f"(or give a local folder holding config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def planning_only(name: str) -> bool:
    """Whether a catalog model is for place-and-route planning only (never a benchmark cell).

    Such entries (e.g. `bloom-176b`) describe a model's shape for splitting it over a
    fleet; building it whole with dummy weights on one worker would only run out of memory.
    """
    if not (CATALOG_DIR / f"{name}.json").is_file():
        return False
    return bool(catalog_entry(name).get(META_KEY, {}).get("planning_only", False))


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> ModelRef:
    """A catalog name (written out as a config folder, dummy weights) or a local model folder."""
    if (CATALOG_DIR / f"{name_or_path}.json").is_file():
        entry = catalog_entry(name_or_path)
        config = {k: v for k, v in entry.items() if k != META_KEY}
        root = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR.expanduser()
        folder = root / name_or_path
        _write_config(folder / "config.json", config)
        return ModelRef(name_or_path, folder.resolve(), "dummy", config)
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise ModelError(f"model folder {folder} has no config.json")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read {config_path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ModelError(f"{config_path} is not a JSON object")
        has_weights = any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS)
        return ModelRef(folder.resolve().name, folder.resolve(),
                        "real" if has_weights else "dummy", config)
    raise ModelError(f"unknown model {name_or_path!r}; known: {', '.join(known_models())} "
                     f"(or give a local folder holding config.json)")


def _write_config(path: Path, config: dict[str, Any]) -> None:
    """Write config.json atomically; leave an identical file alone."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("wrote %s", path)


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language-model part of a config (multimodal configs nest it in text_config)."""
    inner = config.get("text_config")
    return {**config, **inner} if isinstance(inner, dict) else config


def _first(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def vocab_size(ref: ModelRef) -> int:
    """Vocabulary size of a model, from its config."""
    value = _first(_text_config(ref.config), "vocab_size", "padded_vocab_size")
    if not isinstance(value, int) or value < 2:
        raise ModelError(f"config of {ref.name} has no usable vocab_size (got {value!r})")
    return value


def config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """Architecture facts of a config: family, parameter counts, shapes, context, dtype."""
    c = _text_config(config)
    family = c.get("model_type") or (c.get("architectures") or ["unknown"])[0]
    hidden = int(_first(c, "hidden_size", "n_embd", "d_model", default=0))
    layers = int(_first(c, "num_hidden_layers", "n_layer", "num_layers", default=0))
    heads = int(_first(c, "num_attention_heads", "n_head", default=0))
    kv_heads = int(_first(c, "num_key_value_heads", "num_kv_heads", default=heads) or heads)
    head_dim = int(_first(c, "head_dim", default=hidden // heads if heads else 0))
    intermediate = int(_first(c, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden))
    experts = int(_first(c, "num_local_experts", "num_experts", "n_routed_experts", default=0))
    per_token = int(_first(c, "num_experts_per_tok", "moe_topk", default=0)) if experts else 0
    vocab = int(_first(c, "vocab_size", "padded_vocab_size", default=0))
    total, active = _parameters(c, family, hidden, layers, heads, kv_heads, head_dim,
                                intermediate, experts, per_token, vocab)
    summary = {
        "family": family,
        "architecture": (c.get("architectures") or [""])[0],
        "parameters": total,
        "active_parameters": active,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": intermediate,
        "num_experts": experts,
        "experts_per_token": per_token,
        "max_context": int(_first(c, "max_position_embeddings", "n_positions", "seq_length",
                                  default=0)),
        "dtype": str(_first(c, "torch_dtype", "dtype", default="")),
        "vocab_size": vocab,
    }
    quantization = quantization_of(config)
    if quantization:  # only quantised configs carry the key: other summaries are unchanged
        summary["quantization"] = quantization
    return summary


def _parameters(c: dict[str, Any], family: str, hidden: int, layers: int, heads: int,
                kv_heads: int, head_dim: int, intermediate: int, experts: int, per_token: int,
                vocab: int) -> tuple[int, int]:
    """Estimated (total, active per token) parameters from the shapes of a decoder config."""
    biased = family in LAYERNORM_BIAS
    qkv_bias = biased or bool(c.get("attention_bias")) or family in ("qwen2", "qwen2_moe")
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * (q + 2 * kv) + q * hidden
    if qkv_bias:
        attention += q + 2 * kv
    if biased:
        attention += hidden
    gated = family not in NON_GATED_MLP
    moe_inter = int(_first(c, "moe_intermediate_size", default=intermediate))

    def mlp(width: int) -> int:
        return (3 if gated else 2) * hidden * width + ((width + hidden) if biased else 0)

    norms = (2 if biased else 1) * hidden * 2
    if experts:
        shared_inter = int(_first(c, "shared_expert_intermediate_size", default=0))
        shared = mlp(shared_inter) if shared_inter else 0
        router = hidden * experts
        dense_total = attention + norms + router + shared
        layer_total = dense_total + experts * mlp(moe_inter)
        layer_active = dense_total + per_token * mlp(moe_inter)
    else:
        layer_total = layer_active = attention + norms + mlp(intermediate)
    embed = vocab * hidden
    head = 0 if c.get("tie_word_embeddings", False) else vocab * hidden
    if biased and head:
        head += vocab
    final_norm = (2 if biased else 1) * hidden
    outside = embed + head + final_norm
    return outside + layers * layer_total, outside + layers * layer_active
