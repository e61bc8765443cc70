"""Model shapes for placement: blocks, their bytes and FLOPs, and the per-session cache.

A shape comes from a name in the farm's model catalog (`metainf.models`, HF config.json
files; `bloom-176b` is there for planning only) or inline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from metainf.models import META_KEY, NON_GATED_MLP, ModelError, catalog_entry, known_models

from .errors import FleetError


@dataclass(frozen=True)
class ModelShape:
    """What placement needs to know about a model: its blocks' size, compute and cache."""

    name: str
    num_blocks: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    intermediate: int
    gated_mlp: bool
    params_per_block: float
    weight_bits: float = 16.0
    block_overhead: float = 0.0
    cache_bytes_per_value: float = 2.0

    @property
    def kv_dim(self) -> int:
        """Width of one of K or V per token (d_model unless attention groups KV heads)."""
        return self.d_model * self.n_kv_heads // self.n_heads

    @property
    def block_bytes(self) -> float:
        """s_m: bytes of one block's weights, overhead included."""
        return self.params_per_block * self.weight_bits / 8.0 * (1.0 + self.block_overhead)

    def cache_bytes_per_block(self, tokens: int) -> float:
        """s_c: one session's attention cache on one block for `tokens` tokens (K and V)."""
        return 2.0 * self.kv_dim * tokens * self.cache_bytes_per_value

    @property
    def flops_per_token(self) -> float:
        """FLOPs of one block for one token (two per parameter; attention ignored)."""
        return 2.0 * self.params_per_block

    def replace(self, **changes: Any) -> ModelShape:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _first(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of `keys` present (not None) in `config`."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def block_parameters(d_model: int, n_heads: int, n_kv_heads: int, intermediate: int,
                     gated: bool) -> int:
    """Weight parameters of one decoder block (attention + MLP; norms and biases ignored)."""
    kv = d_model * n_kv_heads // n_heads
    attention = 2 * d_model * d_model + 2 * d_model * kv
    mlp = (3 if gated else 2) * d_model * intermediate
    return attention + mlp


def shape_from_config(name: str, config: dict[str, Any]) -> ModelShape:
    """A shape from a HF config.json dict (BLOOM-, Llama-, Phi-style keys)."""
    inner = config.get("text_config")
    c = {**config, **inner} if isinstance(inner, dict) else config
    family = str(c.get("model_type", ""))
    d_model = int(_first(c, "hidden_size", "n_embd", "d_model", default=0))
    layers = int(_first(c, "num_hidden_layers", "n_layer", "num_layers", default=0))
    heads = int(_first(c, "num_attention_heads", "n_head", default=0))
    if d_model <= 0 or layers <= 0 or heads <= 0:
        raise FleetError("model", f"config of {name} lacks hidden size, layers or heads")
    kv_heads = int(_first(c, "num_key_value_heads", "num_kv_heads", default=heads) or heads)
    intermediate = int(_first(c, "intermediate_size", "n_inner", "ffn_dim",
                              default=4 * d_model) or 4 * d_model)
    experts = int(_first(c, "num_local_experts", "num_experts", default=0) or 0)
    gated = family not in NON_GATED_MLP
    params = block_parameters(d_model, heads, kv_heads, intermediate, gated)
    if experts:
        kv = d_model * kv_heads // heads
        params += (experts - 1) * (3 if gated else 2) * d_model * intermediate
        params = max(params, 2 * d_model * d_model + 2 * d_model * kv)
    return ModelShape(name=name, num_blocks=layers, d_model=d_model, n_heads=heads,
                      n_kv_heads=kv_heads, intermediate=intermediate, gated_mlp=gated,
                      params_per_block=float(params))


def catalog_config(name: str) -> dict[str, Any]:
    """The config.json of a model in the farm's catalog (`metainf/model_configs/`)."""
    try:
        entry = catalog_entry(name)
    except ModelError:
        raise FleetError("model.catalog",
                         f"unknown model {name!r}; known: {', '.join(known_models())}"
                         ) from None
    return {k: v for k, v in entry.items() if k != META_KEY}


def load_shape(name: str) -> ModelShape:
    """The shape of a catalog model by name (16-bit weights, no overhead)."""
    return shape_from_config(name, catalog_config(name))
