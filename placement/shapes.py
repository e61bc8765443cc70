"""Model shapes for placement: blocks, their bytes and FLOPs, and the per-session cache.

A shape comes from a catalog name (a HF config.json found in the farm's model catalog,
or in this package's `model_shapes/` for models not yet in the catalog) or inline.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FleetError

CATALOG_PACKAGES = ("metainf.model_configs", "metainf.worker.model_configs")
"""Where the farm's model catalog lives, newest layout first."""

LOCAL_SHAPES = Path(__file__).parent / "model_shapes"
"""Configs shipped with this package (models the catalog does not hold yet)."""

NON_GATED = frozenset({"bloom", "phi", "gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt",
                       "falcon", "starcoder2", "mpt"})
"""Model types whose MLP has two matrices (up, down) rather than three (gated)."""


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
    gated = family not in NON_GATED
    params = block_parameters(d_model, heads, kv_heads, intermediate, gated)
    if experts:
        kv = d_model * kv_heads // heads
        params += (experts - 1) * (3 if gated else 2) * d_model * intermediate
        params = max(params, 2 * d_model * d_model + 2 * d_model * kv)
    return ModelShape(name=name, num_blocks=layers, d_model=d_model, n_heads=heads,
                      n_kv_heads=kv_heads, intermediate=intermediate, gated_mlp=gated,
                      params_per_block=float(params))


def known_shapes() -> list[str]:
    """Names findable by `catalog_config`: the farm's catalog plus this package's shapes."""
    names = {p.stem for p in LOCAL_SHAPES.glob("*.json")}
    for package in CATALOG_PACKAGES:
        try:
            root = importlib.resources.files(package)
        except (ModuleNotFoundError, TypeError):
            continue
        names.update(Path(str(p.name)).stem for p in root.iterdir()
                     if str(p.name).endswith(".json"))
    return sorted(names)


def catalog_config(name: str) -> dict[str, Any]:
    """The config.json of a catalog model, looked up in the catalog, then `model_shapes/`."""
    for package in CATALOG_PACKAGES:
        try:
            candidate = importlib.resources.files(package) / f"{name}.json"
        except (ModuleNotFoundError, TypeError):
            continue
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    local = LOCAL_SHAPES / f"{name}.json"
    if local.is_file():
        return json.loads(local.read_text(encoding="utf-8"))
    raise FleetError("model.catalog",
                     f"unknown model {name!r}; known: {', '.join(known_shapes())}")


def load_shape(name: str) -> ModelShape:
    """The shape of a catalog model by name (16-bit weights, no overhead)."""
    return shape_from_config(name, catalog_config(name))
