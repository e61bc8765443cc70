"""Memory fit: a model's weights plus the KV cache of a workload's batch, against the
hardware's memory times its count, less a stated margin that `oom` rows of P can raise.

Units are GiB (2**30 bytes) throughout. A hardware's memory is read as GiB as its source
states it: a worker profile reports GiB; a catalog or free-text "80GB" is taken as
80 GiB, which is what an 80 GB HBM card holds (an H100 80GB shows 79.6 GiB in nvidia-smi;
a 16 GB GDDR6 T4 shows 15 GiB, a 6 % overstatement the margin absorbs).

The rule (docs/memory.md states it for users):

    weights   = parameters x bytes per parameter (dtype or quantisation)
    KV cache  = 2 (K and V) x layers x KV heads x head size x bytes per element
                x sequences in flight x tokens per sequence
    fits      = weights + KV cache <= memory per device x devices x (1 - margin)

Sequences in flight are min(batch size, prompts); tokens per sequence are the
workload's p90 input length plus its p90 output length. The margin, DEFAULT_MARGIN
(10 %), is the share of memory held back for activations, the CUDA context, the
allocator's fragmentation and communication buffers: vLLM's own default
(`gpu_memory_utilization=0.9`) holds back the same share. A measured `oom` cell raises
it (calibrate_margin) until that cell is no longer predicted to fit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
"""Bytes in a GiB."""

DEFAULT_MARGIN = 0.10
"""Share of the hardware's memory not available to weights and KV cache (activations,
CUDA context, fragmentation, communication buffers); vLLM's default holds back 10 %."""

MAX_MARGIN = 0.5
"""The most an `oom` cell may raise the margin to. An oom whose weights and KV cache
fill less than half the memory is not a shortfall this rule can explain (a crash, a
too-small KV pool setting), so it is counted as unexplained and leaves the margin alone."""

MARGIN_STEP = 0.01
"""Granularity of a calibrated margin (it is raised to the next whole percent)."""

DTYPE_BYTES: dict[str, float] = {
    "float32": 2.0, "fp32": 2.0, "float": 2.0,  # vLLM's dtype=auto runs fp32 checkpoints in fp16
    "bfloat16": 2.0, "bf16": 2.0, "float16": 2.0, "fp16": 2.0, "half": 2.0,
    "float8": 1.0, "fp8": 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "int8": 1.0,
    "int4": 0.5, "fp4": 0.5, "nf4": 0.5,
}
"""Bytes per weight (or KV element) by dtype name, as the engine holds them in memory."""

DEFAULT_DTYPE = "bfloat16"
"""Dtype assumed when a model's config or description names none."""


class MemoryFitError(ValueError):
    """A size that cannot be computed (a negative or non-finite number)."""


def dtype_bytes(dtype: str | None) -> float | None:
    """Bytes per element of a dtype name ('torch.bfloat16', 'int4', 'awq-4bit'), or None."""
    if not dtype:
        return None
    low = str(dtype).lower().replace("torch.", "").strip()
    if low in DTYPE_BYTES:
        return DTYPE_BYTES[low]
    bits = re.search(r"(\d+)\s*-?\s*bits?\b", low)
    if bits and 1 <= int(bits.group(1)) <= 32:
        return int(bits.group(1)) / 8
    for name in sorted(DTYPE_BYTES, key=len, reverse=True):  # 'float8' before 'float'
        if name in low:
            return DTYPE_BYTES[name]
    return None


def quantization_of(config: Mapping[str, Any]) -> str:
    """A config's weight quantisation as 'METHOD-Nbit' (or 'fp8'), empty when none."""
    q = config.get("quantization_config")
    if not isinstance(q, Mapping):
        return ""
    method = str(q.get("quant_method") or q.get("quant_type") or "quantized").lower()
    bits = q.get("bits") or q.get("w_bit") or q.get("weight_bits")
    if q.get("load_in_4bit"):
        bits = 4
    elif q.get("load_in_8bit"):
        bits = 8
    if not bits and "fp8" in method:
        return "fp8"
    return f"{method}-{int(bits)}bit" if bits else method


@dataclass(frozen=True)
class ModelMemory:
    """What a model holds: weights by parameter count and dtype, KV cache per token."""

    name: str
    parameters: float
    weight_dtype: str = DEFAULT_DTYPE
    weight_bytes: float = 2.0
    unquantized_parameters: float = 0.0
    """Parameters kept at 16 bits under quantisation (embeddings and LM head)."""
    num_layers: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    kv_dtype: str = DEFAULT_DTYPE
    kv_bytes: float = 2.0

    @property
    def weights_gib(self) -> float:
        """Weights in memory, GiB."""
        quantized = max(self.parameters - self.unquantized_parameters, 0.0)
        return (quantized * self.weight_bytes + self.unquantized_parameters * 2.0) / GIB

    @property
    def kv_bytes_per_token(self) -> float | None:
        """KV-cache bytes per token of one sequence (None when the shape is unknown)."""
        if not (self.num_layers and self.num_kv_heads and self.head_dim):
            return None
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes

    def with_kv_dtype(self, dtype: str | None) -> ModelMemory:
        """The same model with its KV cache held in another dtype (e.g. 'fp8')."""
        size = dtype_bytes(dtype) if dtype and str(dtype).lower() != "auto" else None
        if size is None:
            return self
        return ModelMemory(self.name, self.parameters, self.weight_dtype, self.weight_bytes,
                           self.unquantized_parameters, self.num_layers, self.num_kv_heads,
                           self.head_dim, str(dtype), size)


def _positive(summary: Mapping[str, Any], *keys: str) -> float:
    for key in keys:
        try:
            v = float(summary.get(key) or 0)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and v > 0:
            return v
    return 0.0


def model_memory(summary: Mapping[str, Any], name: str = "") -> ModelMemory | None:
    """ModelMemory from a config summary (metainf.models.config_summary or parsed text);
    None when the summary has no parameter count."""
    params = _positive(summary, "parameters")
    if not params:
        return None
    dtype = str(summary.get("dtype") or "").replace("torch.", "") or DEFAULT_DTYPE
    act_bytes = dtype_bytes(dtype) or 2.0
    quant = str(summary.get("quantization") or "")
    weight_dtype, weight_bytes, unquantized = dtype, act_bytes, 0.0
    if quant:
        weight_dtype, weight_bytes = quant, dtype_bytes(quant) or act_bytes
        vocab, hidden = _positive(summary, "vocab_size"), _positive(summary, "hidden_size")
        unquantized = min(2 * vocab * hidden, params)  # embeddings and LM head stay 16-bit
    if act_bytes < 2.0:  # an int8/int4 'dtype' names the weights; the KV cache stays 16-bit
        kv_dtype, kv_bytes = DEFAULT_DTYPE, 2.0
    else:
        kv_dtype, kv_bytes = dtype, act_bytes
    heads = _positive(summary, "num_attention_heads")
    kv_heads = _positive(summary, "num_kv_heads") or heads
    head_dim = _positive(summary, "head_dim")
    hidden = _positive(summary, "hidden_size")
    if not head_dim and hidden and heads:
        head_dim = hidden / heads
    return ModelMemory(name=name, parameters=params, weight_dtype=weight_dtype,
                       weight_bytes=weight_bytes, unquantized_parameters=unquantized,
                       num_layers=int(_positive(summary, "num_layers")),
                       num_kv_heads=int(kv_heads), head_dim=int(head_dim),
                       kv_dtype=kv_dtype, kv_bytes=kv_bytes)


def model_memory_from_config(config: Mapping[str, Any], name: str = "") -> ModelMemory | None:
    """ModelMemory from a HF config.json (quantisation_config included)."""
    from metainf.models import config_summary

    return model_memory(config_summary(dict(config)), name)


@dataclass(frozen=True)
class WorkloadShape:
    """The sequences a workload keeps in flight and the tokens each one holds."""

    sequences: int
    tokens_per_sequence: float
    basis: str = ""
    """How tokens_per_sequence was found, e.g. 'p90 input + p90 output'."""


_LENGTH_KEYS = ("p90", "p99", "max", "mean", "p50")


def _length(stats: Mapping[str, Any], prefix: str) -> tuple[float, str] | None:
    for key in _LENGTH_KEYS:
        v = _positive(stats, f"{prefix}_{key}")
        if v:
            return v, key
    return None


def workload_shape(stats: Mapping[str, Any], batch_size: float | None) -> WorkloadShape | None:
    """Sequences in flight (batch size, at most the prompts) and tokens per sequence
    (p90 input + p90 output, else the nearest statistic stated); None when unknown."""
    if not batch_size or not math.isfinite(float(batch_size)) or batch_size <= 0:
        return None
    inp = _length(stats, "input_len")
    out = _length(stats, "output_len")
    if out is None and _positive(stats, "max_output_tokens"):
        out = (_positive(stats, "max_output_tokens"), "max_output_tokens")
    if inp is None and out is None:
        return None
    sequences = int(math.ceil(float(batch_size)))
    prompts = _positive(stats, "num_prompts")
    if prompts:
        sequences = min(sequences, int(prompts))
    parts, tokens = [], 0.0
    for (value, key), what in ((inp, "input"), (out, "output")):
        if value is not None:
            tokens += value
            parts.append(f"{key} {what}" if key != "max_output_tokens" else key)
    return WorkloadShape(sequences=sequences, tokens_per_sequence=tokens,
                         basis=" + ".join(parts))


@dataclass(frozen=True)
class MemoryNeed:
    """Weights plus KV cache of one model and workload, GiB."""

    weights_gib: float
    kv_gib: float | None = None
    sequences: int = 0
    tokens_per_sequence: float = 0.0
    weight_dtype: str = ""

    @property
    def total_gib(self) -> float:
        """Weights plus KV cache (weights alone when the KV cache is unknown)."""
        return self.weights_gib + (self.kv_gib or 0.0)

    def describe(self) -> str:
        """The parts in words: '131.4 GiB of bf16 weights + 4.2 GiB of KV cache for ...'."""
        dtype = f" {self.weight_dtype}" if self.weight_dtype else ""
        text = f"{self.weights_gib:.1f} GiB of{dtype} weights"
        if self.kv_gib is None:
            return text + " (KV cache unknown)"
        return (text + f" + {self.kv_gib:.1f} GiB of KV cache for {self.sequences} sequences"
                f" x {self.tokens_per_sequence:.0f} tokens")


def memory_need(model: ModelMemory, workload: WorkloadShape | None) -> MemoryNeed:
    """The memory a model needs for a workload: weights + KV cache of its batch."""
    per_token = model.kv_bytes_per_token
    kv = None
    if per_token is not None and workload is not None:
        kv = per_token * workload.sequences * workload.tokens_per_sequence / GIB
    return MemoryNeed(weights_gib=model.weights_gib, kv_gib=kv,
                      sequences=workload.sequences if workload else 0,
                      tokens_per_sequence=workload.tokens_per_sequence if workload else 0.0,
                      weight_dtype=_short_dtype(model.weight_dtype))


def _short_dtype(dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp16", "float": "fp16"}.get(
        dtype, dtype)


def fits(need_gib: float, memory_gib: float, margin: float) -> bool:
    """The fit rule: need <= memory x (1 - margin)."""
    return need_gib <= memory_gib * (1.0 - margin)


@dataclass(frozen=True)
class MemoryFit:
    """A need against a hardware's memory: whether it fits, and why not in numbers."""

    need: MemoryNeed
    memory_per_device_gib: float
    devices: int
    margin: float

    @property
    def memory_gib(self) -> float:
        """Memory of all devices, GiB."""
        return self.memory_per_device_gib * self.devices

    @property
    def usable_gib(self) -> float:
        """Memory left for weights and KV cache after the margin, GiB."""
        return self.memory_gib * (1.0 - self.margin)

    @property
    def fits(self) -> bool:
        """Weights and KV cache fit in the usable memory."""
        return fits(self.need.total_gib, self.memory_gib, self.margin)

    def reason(self) -> str:
        """Empty when it fits; else the numbers: what is needed, what is there."""
        if self.fits:
            return ""
        devices = (f"{self.devices} x {self.memory_per_device_gib:.4g} GiB"
                   if self.devices > 1 else f"{self.memory_per_device_gib:.4g} GiB")
        return (f"does not fit in memory: needs {self.need.total_gib:.1f} GiB "
                f"({self.need.describe()}), has {self.usable_gib:.1f} GiB usable of "
                f"{devices} (less the {self.margin * 100:.0f} % margin)")


def check_fit(need: MemoryNeed, memory_per_device_gib: float, devices: int = 1,
              margin: float = DEFAULT_MARGIN) -> MemoryFit:
    """Whether a need fits in `devices` x `memory_per_device_gib` less the margin."""
    if not (math.isfinite(memory_per_device_gib) and memory_per_device_gib > 0):
        raise MemoryFitError(f"memory must be a finite number > 0 (got {memory_per_device_gib})")
    if devices < 1:
        raise MemoryFitError(f"devices must be >= 1 (got {devices})")
    return MemoryFit(need, float(memory_per_device_gib), int(devices), float(margin))


@dataclass(frozen=True)
class MarginCalibration:
    """The margin after the oom cells of P: how many there were and what each did."""

    margin: float = DEFAULT_MARGIN
    default: float = DEFAULT_MARGIN
    oom_cells: int = 0
    """oom cells whose need and memory could be sized."""
    raised_by: int = 0
    """Of those, cells that were predicted to fit at the margin reached so far."""
    unexplained: int = 0
    """Cells whose need is under (1 - MAX_MARGIN) of memory: left out."""
    unsized: int = 0
    """oom cells whose model, workload or hardware memory is unknown."""

    def describe(self) -> str:
        """One line for logs and docs."""
        base = f"memory margin {self.margin * 100:.0f} %"
        if not (self.oom_cells or self.unsized):
            return base + " (the default; P has no oom cells)"
        return (base + f" (default {self.default * 100:.0f} %; {self.oom_cells} oom cell(s) "
                f"sized, {self.raised_by} raised it, {self.unexplained} unexplained, "
                f"{self.unsized} unsized)")


def calibrate_margin(oom_cells: Iterable[tuple[float, float] | None],
                     default: float = DEFAULT_MARGIN,
                     cap: float = MAX_MARGIN) -> MarginCalibration:
    """Raise the margin until no measured oom cell is predicted to fit.

    Each cell is (need GiB, memory GiB) or None when it could not be sized. A cell is
    predicted to fit while margin <= 1 - need / memory, so the margin goes to the next
    whole percent above that; a cell that would need more than `cap` is unexplained.
    """
    margin, sized, raised, unexplained, unsized = float(default), 0, 0, 0, 0
    for cell in oom_cells:
        if cell is None:
            unsized += 1
            continue
        need, memory = cell
        if not (math.isfinite(need) and math.isfinite(memory) and need > 0 and memory > 0):
            unsized += 1
            continue
        sized += 1
        if not fits(need, memory, margin):
            continue
        required = 1.0 - need / memory  # fits while margin <= required
        if required >= cap:
            unexplained += 1
            continue
        new = round(math.ceil(required / MARGIN_STEP) * MARGIN_STEP, 10)
        while fits(need, memory, new):
            new = round(new + MARGIN_STEP, 10)
        if new > cap:
            unexplained += 1
            continue
        margin, raised = new, raised + 1
    return MarginCalibration(margin=margin, default=float(default), oom_cells=sized,
                             raised_by=raised, unexplained=unexplained, unsized=unsized)
