"""One transformer block of a model's shape in PyTorch, and the block timing (τ, τᴵ) of it.

vLLM cannot run a single block, so a block timing runs a pre-norm decoder block
(attention with grouped KV heads and a KV cache, a gated or up/down MLP as the family
has; random seeded weights, no rotary: timing only) with plain PyTorch: τ is the median
time of one decode step (one token against a growing cache), τᴵ the median time of a
prefill of `l_in` tokens. The worker's block-timing cells and placement's real
pipeline check both use it; torch is imported only when a block is built.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from metainf.models import NON_GATED_MLP, config_summary

DECODE_STEPS = 4
"""Decode steps timed after each prefill (the cache grows by one token each)."""


@dataclass(frozen=True)
class BlockShape:
    """What a decoder block's weights and cache look like."""

    d_model: int
    n_heads: int
    n_kv_heads: int
    intermediate: int
    gated_mlp: bool = True

    @property
    def kv_dim(self) -> int:
        """Width of one of K or V per token."""
        return self.d_model * self.n_kv_heads // self.n_heads

    @property
    def parameters(self) -> int:
        """Weight parameters of the block (attention and MLP; norms and biases ignored)."""
        mlp = (3 if self.gated_mlp else 2) * self.d_model * self.intermediate
        return 2 * self.d_model * (self.d_model + self.kv_dim) + mlp

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BlockShape:
        """The block shape of a HF config.json dict (Llama-, BLOOM-, Phi-style keys)."""
        s = config_summary(config)
        if not (s["hidden_size"] and s["num_attention_heads"]):
            raise ValueError("config lacks hidden size or attention heads")
        return cls(s["hidden_size"], s["num_attention_heads"], s["num_kv_heads"],
                   s["intermediate_size"] or 4 * s["hidden_size"],
                   s["family"] not in NON_GATED_MLP)


@dataclass(frozen=True)
class BlockTiming:
    """A block timing: seconds per decode step (τ) and per prefill of l_in tokens (τᴵ)."""

    tau_s: float
    tau_prefill_s: float
    l_in: int
    device: str
    dtype: str
    torch_version: str

    def to_dict(self) -> dict[str, Any]:
        """The timing as a plain dict."""
        return asdict(self)


def torch_block(shape: Any, seed: int = 0, device: str = "cpu", dtype: str = "float32"):
    """One decoder block of `shape` (anything with d_model, n_heads, n_kv_heads,
    intermediate, kv_dim and gated_mlp), weights from `seed`, in eval mode on `device`."""
    import torch
    from torch import nn

    class Block(nn.Module):
        """A pre-norm decoder block with a KV cache per call (no rotary: timing only)."""

        def __init__(self) -> None:
            super().__init__()
            d, kv = shape.d_model, shape.kv_dim
            self.heads, self.kv_heads = shape.n_heads, shape.n_kv_heads
            self.q, self.k = nn.Linear(d, d, bias=False), nn.Linear(d, kv, bias=False)
            self.v, self.o = nn.Linear(d, kv, bias=False), nn.Linear(d, d, bias=False)
            self.up = nn.Linear(d, shape.intermediate, bias=False)
            self.gate = nn.Linear(d, shape.intermediate, bias=False) if shape.gated_mlp \
                else None
            self.down = nn.Linear(shape.intermediate, d, bias=False)
            self.n1, self.n2 = nn.RMSNorm(d), nn.RMSNorm(d)

        def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None):
            """x: [tokens, d]; cache: [K, V] of earlier tokens or None."""
            t, d = x.shape
            hd = d // self.heads
            h = self.n1(x)
            q = self.q(h).view(t, self.heads, hd).transpose(0, 1)
            k = self.k(h).view(t, self.kv_heads, hd).transpose(0, 1)
            v = self.v(h).view(t, self.kv_heads, hd).transpose(0, 1)
            if cache is not None:
                k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
            rep = self.heads // self.kv_heads
            kk, vv = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            mask = cache is None and t > 1
            a = nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=mask)
            x = x + self.o(a.transpose(0, 1).reshape(t, d))
            h = self.n2(x)
            if self.gate is None:  # up/down MLP (BLOOM, Phi, GPT-2 style)
                x = x + self.down(nn.functional.gelu(self.up(h)))
            else:
                x = x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))
            return x, [k, v]

    torch.manual_seed(seed)
    return Block().to(device=device, dtype=getattr(torch, dtype)).eval()


def _sync(device: str) -> None:
    """Wait for queued kernels, so wall time covers them (CUDA runs asynchronously)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(block: Any, d_model: int, l_in: int, repeats: int, device: str = "cpu",
            dtype: str = "float32") -> tuple[float, float]:
    """(τ, τᴵ): median seconds of one decode step and of one prefill of l_in tokens."""
    import torch

    decode, prefill = [], []
    kind = getattr(torch, dtype)
    with torch.inference_mode():
        for _ in range(repeats):
            x = torch.randn(l_in, d_model, device=device, dtype=kind)
            _sync(device)
            t0 = time.perf_counter()
            _, cache = block(x, None)
            _sync(device)
            prefill.append(time.perf_counter() - t0)
            y = torch.randn(1, d_model, device=device, dtype=kind)
            for _ in range(DECODE_STEPS):
                t0 = time.perf_counter()
                _, cache = block(y, cache)
                _sync(device)
                decode.append(time.perf_counter() - t0)
    return statistics.median(decode), statistics.median(prefill)


def time_block(shape: BlockShape, l_in: int, repeats: int = 10, device: str = "cpu",
               dtype: str = "float32", seed: int = 0) -> BlockTiming:
    """Build one block of `shape` on `device` and time it (one warm-up round not counted)."""
    import torch

    block = torch_block(shape, seed, device, dtype)
    measure(block, shape.d_model, l_in, 1, device, dtype)  # warm-up: allocator, kernels
    tau, tau_prefill = measure(block, shape.d_model, l_in, repeats, device, dtype)
    return BlockTiming(tau, tau_prefill, l_in, device, dtype, torch.__version__)
