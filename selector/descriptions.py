"""Text descriptions and numeric facts of each axis (workload, model, hardware, method).

Four prompt styles (the paper's ablation): ``onehot`` (identity only), ``basic`` (axis
and name), ``rich`` (a structured template of facts) and ``cot`` (rich plus reasoning
about what the facts imply for inference). Every description is an :class:`Entity`,
which renders any style and carries the numeric facts that go beside its embedding.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metainf.hardware_catalog import HardwareFacts, facts_from_profile, facts_from_text
from metainf.hardware_catalog import lookup as lookup_hardware
from metainf.methods import (
    DEFAULT_CP_TOKEN_BUDGET,
    Method,
    MethodError,
    method_from_dict,
    method_from_name,
)
from metainf.selector.table import TableMapping

log = logging.getLogger(__name__)

STYLES = ("onehot", "basic", "rich", "cot")
"""Description styles, from identity only to facts plus reasoning."""

AXES = ("workload", "model", "hardware", "method")
"""The axes a task (and its method) is described along."""

_AXIS_TITLE = {"workload": "Workload", "model": "Model", "hardware": "Hardware",
               "method": "Method"}


def check_style(style: str) -> str:
    """Return the style or raise ValueError listing the known ones."""
    if style not in STYLES:
        raise ValueError(f"unknown description style {style!r}; known: {', '.join(STYLES)}")
    return style


def format_value(value: Any) -> str:
    """A stable text form of a table value: 1024, 1024.0 and '1024' all read '1024'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            x = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isnan(x):
            return "nan"
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.6g}"
    return str(value).strip()


def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _human_count(n: float) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


@dataclass(frozen=True)
class Entity:
    """One described thing of an axis: identity, facts in words, reasoning, numbers."""

    axis: str
    key: str
    label: str
    details: tuple[tuple[str, str], ...] = ()
    reasoning: tuple[str, ...] = ()
    facts: Mapping[str, float] = field(default_factory=dict)
    parts: tuple[tuple[str, str], ...] = ()

    def text(self, style: str) -> str:
        """The description in one style."""
        check_style(style)
        title = _AXIS_TITLE[self.axis]
        if style == "onehot":
            return self.label
        if style == "basic":
            return f"{title}: {self.label}"
        body = f"{title}: {self.label}."
        if self.details:
            body += " " + "; ".join(f"{k}: {v}" for k, v in self.details) + "."
        if style == "cot" and self.reasoning:
            body += " Implications for inference: " + " ".join(self.reasoning)
        return body

    def identity(self) -> tuple[tuple[str, str], ...]:
        """Identity parts for one-hot encoding (one per table column it stands for)."""
        return self.parts or ((self.axis, self.key),)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"axis": self.axis, "key": self.key, "label": self.label,
                "details": [list(d) for d in self.details], "reasoning": list(self.reasoning),
                "facts": dict(self.facts), "parts": [list(p) for p in self.parts]}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Entity:
        """Inverse of to_dict."""
        return cls(axis=obj["axis"], key=obj["key"], label=obj["label"],
                   details=tuple(tuple(d) for d in obj.get("details", ())),
                   reasoning=tuple(obj.get("reasoning", ())),
                   facts={k: float(v) for k, v in obj.get("facts", {}).items()},
                   parts=tuple(tuple(p) for p in obj.get("parts", ())))


def numeric_facts(axis: str, entity: Entity) -> dict[str, float]:
    """The numeric facts of an entity of an axis (they go beside its embedding)."""
    if entity.axis != axis:
        raise ValueError(f"entity {entity.key!r} is a {entity.axis}, not a {axis}")
    return {k: float(v) for k, v in entity.facts.items() if _num(v) is not None}


# --------------------------------------------------------------------------- model

_DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2,
                "float8": 1, "fp8": 1, "int8": 1, "int4": 0.5}

_FAMILIES = ("mixtral", "llama", "qwen", "mistral", "phi", "gemma", "falcon", "baichuan",
             "deepseek", "gpt", "opt", "bloom", "mpt", "yi", "internlm", "chatglm", "olmo")


def _family_from_name(name: str) -> str:
    low = name.lower()
    return next((f for f in _FAMILIES if f in low), "")


def summary_from_text(text: str) -> dict[str, Any]:
    """The config facts a model name or description states (e.g. '8x7B', '80 layers')."""
    low = text.lower()
    out: dict[str, Any] = {}
    family = _family_from_name(text)
    if family:
        out["family"] = family
    moe = re.search(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*b\b", low)
    if moe:
        experts, size = int(moe.group(1)), float(moe.group(2))
        out["num_experts"] = experts
        out["parameters"] = experts * size * 1e9 * 0.85  # shared attention weights
    else:
        m = re.search(r"(\d+(?:\.\d+)?)\s*([bm])\b(?!/)", low)
        if m:
            out["parameters"] = float(m.group(1)) * (1e9 if m.group(2) == "b" else 1e6)
    for key, pattern in (("num_layers", r"(\d+)\s*(?:layers|transformer blocks)"),
                         ("hidden_size", r"hidden(?:\s*size)?\s*(?:of\s*)?(\d+)"),
                         ("num_attention_heads", r"(\d+)\s*(?:attention|query)\s*heads"),
                         ("num_kv_heads", r"(\d+)\s*(?:kv|key[- ]value)\s*heads"),
                         ("num_experts", r"(\d+)\s*experts"),
                         ("max_context", r"(\d+)\s*k?\s*(?:token\s*)?context")):
        m = re.search(pattern, low)
        if m and key not in out:
            value = int(m.group(1))
            if key == "max_context" and re.search(r"\d+\s*k\s*(?:token\s*)?context", low):
                value *= 1024
            out[key] = value
    m = re.search(r"(\d+)\s*(?:active|experts per token)", low)
    if m and "num_experts" in out:
        out["experts_per_token"] = int(m.group(1))
    for dtype in ("bfloat16", "float16", "bf16", "fp16", "fp8", "int8", "int4", "float32"):
        if dtype in low:
            out["dtype"] = dtype
            break
    return out


def catalog_model_summary(name: str) -> dict[str, Any] | None:
    """The config summary of a model-catalog name or local model dir, or None."""
    try:
        from metainf.models import (
            catalog_entry,
            config_summary,
            known_models,
            resolve_model,
        )
    except ImportError:
        return None
    try:
        lowered = {m.lower(): m for m in known_models()}
        if name.strip().lower() in lowered:
            return dict(config_summary(catalog_entry(lowered[name.strip().lower()])))
        if Path(name).expanduser().is_dir():
            return dict(config_summary(resolve_model(name).config))
    except (ValueError, OSError, KeyError, TypeError) as exc:
        log.warning("no config summary for model %r: %s", name, exc)
    return None


def model_entity(name: str, summary: Mapping[str, Any] | None = None,
                 text: str | None = None) -> Entity:
    """Describe a model from its config summary; a name or text alone gives parsed facts."""
    label = (text or name).strip()
    s = dict(summary or {})
    if not s:
        s = summary_from_text(label)
    details: list[tuple[str, str]] = []
    facts: dict[str, float] = {}
    reasoning: list[str] = []
    family = s.get("family") or _family_from_name(label)
    if family:
        details.append(("Architecture family", str(family)))
    if s.get("architecture"):
        details.append(("Architecture", str(s["architecture"])))
    params = _num(s.get("parameters"))
    active = _num(s.get("active_parameters")) or params
    experts = _num(s.get("num_experts")) or 0
    per_token = _num(s.get("experts_per_token"))
    if params:
        details.append(("Parameters", _human_count(params)))
        facts["log10_parameters"] = math.log10(params)
    if active:
        if experts > 1 and params and active < params:
            details.append(("Active parameters per token", _human_count(active)))
        facts["log10_active_parameters"] = math.log10(active)
    for key, word in (("num_layers", "Layers"), ("hidden_size", "Hidden size"),
                      ("num_attention_heads", "Attention heads"), ("num_kv_heads", "KV heads"),
                      ("head_dim", "Head dimension"), ("intermediate_size", "MLP size"),
                      ("vocab_size", "Vocabulary")):
        v = _num(s.get(key))
        if v:
            details.append((word, format_value(v)))
            facts[key] = v
    if experts > 1:
        per = format_value(per_token or 2)
        details.append(("Mixture of experts", f"{format_value(experts)} experts, {per} per token"))
        facts["num_experts"] = experts
        facts["experts_per_token"] = per_token or 2.0
    else:
        facts["num_experts"] = 1.0
    ctx = _num(s.get("max_context"))
    if ctx:
        details.append(("Max context", f"{format_value(ctx)} tokens"))
        facts["log2_max_context"] = math.log2(ctx)
    dtype = str(s.get("dtype") or "")
    nbytes = _DTYPE_BYTES.get(dtype.replace("torch.", ""), 2)
    if dtype:
        details.append(("Weights dtype", dtype.replace("torch.", "")))
    heads = _num(s.get("num_attention_heads"))
    kv = _num(s.get("num_kv_heads")) or heads
    layers = _num(s.get("num_layers"))
    head_dim = _num(s.get("head_dim"))
    hidden = _num(s.get("hidden_size"))
    if not head_dim and hidden and heads:
        head_dim = hidden / heads
    if params:
        weight_gb = params * nbytes / 1e9
        facts["weights_gb"] = weight_gb
        details.append(("Weights size", f"{weight_gb:.3g} GB"))
        active_gb = (active or params) * nbytes / 1e9
        reasoning.append(
            f"Each decode step reads about {active_gb:.3g} GB of weights, so small-batch decode "
            "is memory-bandwidth bound; larger batches amortise that read."
        )
        if params < 1e9:
            reasoning.append("The model is small: per-step scheduling and kernel launch "
                             "overheads weigh as much as compute, so engine options that add "
                             "work per step can cost more than they save.")
    if layers and kv and head_dim:
        kv_bytes = 2 * layers * kv * head_dim * nbytes
        facts["kv_kb_per_token"] = kv_bytes / 1024
        details.append(("KV cache per token", f"{kv_bytes / 1024:.3g} KB"))
        reasoning.append(
            f"KV cache costs {kv_bytes / 1024:.3g} KB per token, about "
            f"{kv_bytes * 2048 / 2**20:.3g} MB for a 2k-token request: KV-cache memory limits "
            "how many requests fit at once."
        )
        if heads and kv < heads:
            facts["gqa_ratio"] = heads / kv
            reasoning.append(f"Grouped-query attention ({format_value(heads / kv)} query heads "
                             "per KV head) keeps the KV cache small.")
    if experts > 1:
        reasoning.append("Mixture of experts: only some experts run per token (low compute) "
                         "but all expert weights stay in memory.")
    if text and summary:
        details.insert(0, ("Description", text.strip()))
    return Entity(axis="model", key=name.strip(), label=label, details=tuple(details),
                  reasoning=tuple(reasoning), facts=facts, parts=(("model", name.strip()),))


# --------------------------------------------------------------------------- hardware


def hardware_entity(label: str, facts: HardwareFacts, text: str | None = None) -> Entity:
    """Describe hardware from its facts; a free-text spec stays in the description."""
    details: list[tuple[str, str]] = []
    nums: dict[str, float] = {}
    reasoning: list[str] = []
    is_cpu = facts.kind == "cpu"
    if text and facts.source == "text":
        details.append(("Description", text.strip()))
    if facts.source == "catalog" or (facts.source == "profile" and not is_cpu
                                     and facts.architecture):
        details.append(("Catalog entry", facts.name))
    details.append(("Kind", "CPU (no accelerator)" if is_cpu else
                    ("GPU" if facts.kind == "gpu" else "AI accelerator")))
    nums["is_cpu"] = 1.0 if is_cpu else 0.0
    if facts.vendor:
        details.append(("Vendor", facts.vendor))
    if facts.architecture:
        details.append(("Architecture", facts.architecture))
    if not is_cpu:
        details.append(("Devices", str(facts.count)))
        nums["device_count"] = float(facts.count)
    if facts.memory_gb:
        what = "RAM" if is_cpu else "Memory per device"
        kind = f" {facts.memory_type}" if facts.memory_type else ""
        details.append((what, f"{format_value(facts.memory_gb)} GB{kind}"))
        nums["memory_gb"] = float(facts.memory_gb)
        nums["log2_total_memory_gb"] = math.log2(max(facts.memory_gb * facts.count, 1e-3))
    if facts.bandwidth_tbs:
        details.append(("Memory bandwidth", f"{format_value(facts.bandwidth_tbs)} TB/s"))
        nums["bandwidth_tbs"] = float(facts.bandwidth_tbs)
    if facts.bf16_tflops:
        details.append(("BF16 dense peak", f"{format_value(facts.bf16_tflops)} TFLOPS"))
        nums["bf16_tflops"] = float(facts.bf16_tflops)
    if facts.fp16_tflops:
        details.append(("FP16 dense peak", f"{format_value(facts.fp16_tflops)} TFLOPS"))
        nums["fp16_tflops"] = float(facts.fp16_tflops)
        nums.setdefault("bf16_tflops", float(facts.fp16_tflops))
    if facts.interconnect:
        details.append(("Interconnect", facts.interconnect))
    if facts.tdp_w:
        details.append(("Power", f"{format_value(facts.tdp_w)} W"))
        nums["tdp_w"] = float(facts.tdp_w)
    if facts.cpu_cores:
        details.append(("CPU cores", str(facts.cpu_cores)))
        nums["log2_cpu_cores"] = math.log2(max(facts.cpu_cores, 1))
    if facts.isa_flags:
        details.append(("ISA", ", ".join(facts.isa_flags)))
        flags = {f.lower() for f in facts.isa_flags}
        nums["avx512"] = 1.0 if any(f.startswith("avx512") for f in flags) else 0.0
        nums["amx"] = 1.0 if any(f.startswith("amx") for f in flags) else 0.0
    if is_cpu:
        reasoning.append("No accelerator: prefill and decode both run on CPU cores at low "
                         "throughput, so every token of prefill saved (prefix caching) counts "
                         "and extra scheduling work per step is relatively costly.")
        if facts.cpu_cores and facts.cpu_cores <= 8:
            reasoning.append(f"Only {facts.cpu_cores} cores: large batches saturate compute "
                             "quickly.")
    else:
        peak_16bit = facts.bf16_tflops or facts.fp16_tflops  # e.g. the T4 has fp16 only
        if facts.bandwidth_tbs and peak_16bit:
            ratio = peak_16bit / facts.bandwidth_tbs
            nums["flops_per_byte"] = ratio
            reasoning.append(
                f"Compute-to-bandwidth ratio is about {ratio:.0f} FLOP per byte: decode at "
                "batch sizes far below that is memory-bandwidth bound, prefill is compute "
                "bound."
            )
        if facts.memory_gb:
            size = "large" if facts.memory_gb >= 64 else "limited"
            reasoning.append(f"{size.capitalize()} device memory ({format_value(facts.memory_gb)}"
                             " GB) bounds weights plus KV cache: "
                             + ("room for big batches and cached prefixes."
                                if size == "large" else
                                "KV-cache pressure limits batch size and cached prefixes."))
    return Entity(axis="hardware", key=label.strip(), label=label.strip(),
                  details=tuple(details), reasoning=tuple(reasoning), facts=nums,
                  parts=(("hardware", label.strip()),))


def hardware_entity_from_text(text: str, label: str | None = None) -> Entity:
    """Describe hardware given by a catalog name or a free-text spec (warns when unknown)."""
    return hardware_entity(label or text, facts_from_text(text), text=text)


def hardware_entity_from_profile(label: str, profile: Mapping[str, Any],
                                 price_per_hour: float | None = None) -> Entity:
    """Describe a farm hardware class from its probed profile."""
    return hardware_entity(label, facts_from_profile(dict(profile), price_per_hour))


# --------------------------------------------------------------------------- workload

_DATASET_KIND = {
    "synthetic-shared-prefix": "synthetic prompts that all share one system prompt prefix, "
                               "fixed output length",
    "synthetic-sharegpt": "synthetic chat requests with ShareGPT-like varying input and "
                          "output lengths",
    "sharegpt": "real multi-turn chat conversations (ShareGPT)",
    "prompts": "a prompt-response table (reasoning-style prompts)",
}

WORKLOAD_FACT_KEYS = (
    "num_prompts", "input_len_p50", "input_len_p90", "input_len_mean", "input_len_max",
    "output_len_p50", "output_len_p90", "output_len_mean", "output_len_max",
    "shared_prefix_ratio", "max_output_tokens",
)
"""Workload statistics used as numeric facts (beside batch size)."""


def workload_entity(key: str, label: str, stats: Mapping[str, Any],
                    batch_size: float | None, extra: Mapping[str, Any] | None = None) -> Entity:
    """Describe a farm workload from its statistics and batch size."""
    s = dict(stats)
    details: list[tuple[str, str]] = []
    facts: dict[str, float] = {}
    reasoning: list[str] = []
    dataset = str(s.get("dataset") or "")
    if dataset:
        kind = _DATASET_KIND.get(dataset, "")
        details.append(("Dataset", f"{dataset} ({kind})" if kind else dataset))
    for k in WORKLOAD_FACT_KEYS:
        v = _num(s.get(k))
        if v is not None:
            facts[k] = v
    n = facts.get("num_prompts")
    if n:
        details.append(("Prompts", format_value(n)))
        facts["log2_num_prompts"] = math.log2(max(n, 1))
    if batch_size is not None:
        details.append(("Batch size", f"{format_value(batch_size)} requests at a time"))
        facts["batch_size"] = float(batch_size)
        facts["log2_batch_size"] = math.log2(max(float(batch_size), 1))
    for name, word in (("input_len", "Input tokens"), ("output_len", "Output tokens")):
        ps = [(p, _num(s.get(f"{name}_{p}"))) for p in ("p50", "p90", "max")]
        ps = [(p, v) for p, v in ps if v is not None]
        if ps:
            details.append((word, ", ".join(f"{p} {format_value(v)}" for p, v in ps)))
    ratio = facts.get("shared_prefix_ratio")
    if ratio is not None:
        details.append(("Shared prefix", f"{ratio * 100:.0f}% of prompt tokens"))
    for k, v in (extra or {}).items():
        details.append((str(k), format_value(v)))
        x = _num(v)
        if x is not None:
            facts[f"col:{k}"] = x
    # Reasoning about what the statistics imply.
    if ratio is not None:
        if ratio >= 0.3:
            reasoning.append(f"{ratio * 100:.0f}% of prompt tokens are a shared prefix: prefix "
                             "caching can skip recomputing them and cut prefill work.")
        else:
            reasoning.append("Prompts share little prefix: prefix caching has little to reuse "
                             "and mostly adds overhead.")
    i50, o50 = facts.get("input_len_p50"), facts.get("output_len_p50")
    o90, omax = facts.get("output_len_p90"), facts.get("output_len_max")
    if o50 and o90 is not None:
        if o90 > 1.5 * o50 or (omax and omax > 2 * o50):
            reasoning.append("Output lengths vary a lot: continuous batching refills finished "
                             "slots at once, static batching waits for the longest request.")
        else:
            reasoning.append("Output lengths are nearly equal: static and continuous batching "
                             "behave alike.")
    if i50 and o50:
        if i50 >= 4 * o50:
            reasoning.append("Prefill-heavy (long prompts, short answers): prefill compute and "
                             "chunked prefill scheduling dominate.")
        elif o50 >= 2 * i50:
            reasoning.append("Decode-heavy (short prompts, long answers): memory-bound decode "
                             "steps dominate runtime.")
    if batch_size is not None and n:
        waves = math.ceil(n / max(float(batch_size), 1))
        reasoning.append(f"{format_value(n)} prompts at batch size {format_value(batch_size)} "
                         f"is about {waves} wave(s); bigger batches amortise weight reads but "
                         "raise KV-cache pressure.")
    parts = [("workload", label)]
    if batch_size is not None:
        parts.append(("batch_size", format_value(batch_size)))
    parts += [(str(k), format_value(v)) for k, v in (extra or {}).items()]
    shown = label if batch_size is None else f"{label} at batch size {format_value(batch_size)}"
    return Entity(axis="workload", key=key, label=shown, details=tuple(details),
                  reasoning=tuple(reasoning), facts=facts, parts=tuple(parts))


def columns_entity(values: Mapping[str, Any], roles: Mapping[str, str] | None = None
                   ) -> Entity:
    """Describe an external table's workload from its columns ('Column: value'); the
    columns ``roles`` names also give the facts a roofline needs (tokens in and out per
    request, requests per batch; one batch of requests when the table says no more)."""
    details = tuple((str(c), format_value(v)) for c, v in values.items())
    facts: dict[str, float] = {}
    reasoning: list[str] = []
    for c, v in values.items():
        x = _num(v)
        if x is None:
            continue
        facts[f"col:{c}"] = x
        if roles and c in roles:
            facts[roles[c]] = x
        low = str(c).lower()
        if "batch" in low:
            reasoning.append(f"{c} {format_value(x)}: bigger batches amortise weight reads in "
                             "decode but raise KV-cache pressure.")
        elif "input" in low or "prompt" in low or "context" in low:
            reasoning.append(f"{c} {format_value(x)}: longer inputs mean more prefill compute "
                             "and more KV cache per request.")
        elif "output" in low or "gen" in low:
            reasoning.append(f"{c} {format_value(x)}: longer outputs mean more memory-bound "
                             "decode steps.")
    if roles and {"input_len_mean", "output_len_mean"} <= set(facts):
        facts.setdefault("batch_size", 1.0)
        facts["num_prompts"] = facts["batch_size"]
    label = ", ".join(f"{c} {v}" for c, v in details)
    return Entity(axis="workload", key=workload_key(values.values()), label=label,
                  details=details, reasoning=tuple(reasoning), facts=facts,
                  parts=tuple((str(c), format_value(v)) for c, v in values.items()))


def workload_key(values) -> str:
    """The identity of a workload tuple of column values."""
    return json.dumps([format_value(v) for v in values])


# --------------------------------------------------------------------------- method

_FLAG_REASONS = {
    "cb": "Continuous batching admits a new request as soon as one finishes, keeping the "
          "batch full when output lengths vary.",
    "pc": "Prefix caching reuses the KV cache of prompt prefixes already computed: it saves "
          "prefill when prompts share prefixes and costs hashing and cache bookkeeping when "
          "they do not.",
    "cp": f"Chunked prefill splits long prefills into {DEFAULT_CP_TOKEN_BUDGET}-token chunks "
          "mixed with decode steps: steadier latency, some overhead for long prompts.",
}


def method_entity(name: str, method: Method | None = None) -> Entity:
    """Describe a method: its flags and engine options in words (unknown names by text)."""
    if method is None:
        try:
            method = method_from_name(name)
        except MethodError:
            method = None
    if method is None:
        return Entity(axis="method", key=name, label=name, details=(("Description", name),),
                      facts={}, parts=(("method", name),))
    flags = set(method.flags)
    details = [("Continuous batching", "on" if "cb" in flags else "off (static batches)"),
               ("Prefix caching", "on" if "pc" in flags else "off"),
               ("Chunked prefill", f"on ({DEFAULT_CP_TOKEN_BUDGET} tokens per step)"
                if "cp" in flags else "off")]
    if method.engine_args:
        details.append(("Engine options", ", ".join(
            f"{k}={v}" for k, v in sorted(method.engine_args.items()))))
    reasoning = [_FLAG_REASONS[f] for f in method.flags]
    if not flags:
        reasoning.append("Static batching with no caching: each group waits for its longest "
                         "request and every prompt is prefilled in full.")
    facts = {"cb": float("cb" in flags), "pc": float("pc" in flags), "cp": float("cp" in flags),
             "n_engine_options": float(len(method.engine_args))}
    return Entity(axis="method", key=name, label=f"{name} ({method.describe()})",
                  details=tuple(details), reasoning=tuple(reasoning), facts=facts,
                  parts=(("method", name),))


# --------------------------------------------------------------------------- tables


class TableDescriber:
    """Builds entities for the values of a performance table, from its meta or columns."""

    def __init__(self, mapping: TableMapping, meta: Mapping[str, Any] | None = None):
        self.mapping = mapping
        self.meta = dict(meta or {})

    @property
    def is_farm(self) -> bool:
        """True when workloads are farm workload labels described by the meta file."""
        return "workload" in self.mapping.workload_cols and bool(self.meta.get("workloads"))

    def axes(self) -> tuple[str, ...]:
        """The task axes this table has (workload always; model, hardware when mapped)."""
        axes = []
        if self.mapping.workload_cols:
            axes.append("workload")
        if self.mapping.model_col:
            axes.append("model")
        if self.mapping.hardware_col:
            axes.append("hardware")
        return tuple(axes)

    def values(self, axis: str, row: Mapping[str, Any]) -> Any:
        """The value(s) of a task row for an axis."""
        if axis == "model":
            return row[self.mapping.model_col]
        if axis == "hardware":
            return row[self.mapping.hardware_col]
        return tuple(row[c] for c in self.mapping.workload_cols)

    def value_key(self, axis: str, value: Any) -> str:
        """Identity of an axis value (workload tuples become a JSON list)."""
        return workload_key(value) if axis == "workload" else format_value(value)

    def entity(self, axis: str, value: Any) -> Entity:
        """Describe the value of one axis as it appears in the table."""
        if axis == "model":
            return self.model(format_value(value))
        if axis == "hardware":
            return self.hardware(format_value(value))
        if axis == "workload":
            return self.workload(dict(zip(self.mapping.workload_cols, value, strict=True)))
        if axis == "method":
            return self.method(str(value))
        raise ValueError(f"unknown axis {axis!r}; known: {', '.join(AXES)}")

    def model(self, name: str) -> Entity:
        """A model by its table name: meta summary, model catalog, or its name parsed."""
        summary = (self.meta.get("models", {}).get(name) or {}).get("summary")
        if not summary:
            summary = catalog_model_summary(name)
        return model_entity(name, summary)

    def hardware(self, label: str) -> Entity:
        """A hardware value: farm profile from the meta, catalog entry, or its text."""
        info = self.meta.get("hardware", {}).get(label)
        if info and info.get("profile"):
            return hardware_entity_from_profile(label, info["profile"],
                                                info.get("price_per_hour"))
        return hardware_entity_from_text(label)

    def workload(self, values: Mapping[str, Any]) -> Entity:
        """A workload tuple: farm statistics from the meta, or its columns as text."""
        key = workload_key(values.values())
        if self.is_farm and format_value(values.get("workload")) in self.meta["workloads"]:
            label = format_value(values["workload"])
            info = self.meta["workloads"][label]
            stats = {**(info.get("spec") or {}), **(info.get("stats") or {})}
            rest = {c: v for c, v in values.items() if c not in ("workload", "batch_size")}
            bs = _num(values.get("batch_size"))
            e = workload_entity(key, label, stats, bs, rest)
            return e
        return columns_entity(values, self.mapping.token_roles())

    def method(self, name: str) -> Entity:
        """A method by name, with the engine options the meta records for it."""
        info = self.meta.get("methods", {}).get(name)
        method = None
        if info:
            try:
                method = method_from_dict({k: info[k] for k in ("name", "flags", "engine_args")
                                           if k in info})
            except MethodError:
                method = None
        return method_entity(name, method)

    def price(self, label: str) -> float | None:
        """Price per hour of a hardware value: the farm's, else the catalog's."""
        info = self.meta.get("hardware", {}).get(label) or {}
        p = _num(info.get("price_per_hour"))
        if p and p > 0:
            return p
        facts = lookup_hardware(label)
        return facts.price_per_hour if facts else None
