"""A Select request and its resolution into entities: model, workload, hardware, methods.

Known names are looked up in what the model was trained on; catalog names and free
text become new entities described as in training; a hardware never seen gets the
methods measured on its nearest known hardware (description embeddings and facts).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metainf.hardware_catalog import (
    MAX_COUNT,
    HardwareFacts,
    facts_from_profile,
    facts_from_text,
    split_count,
)
from metainf.methods import MethodError, method_from_name
from metainf.selector.artifact import TrainedModel
from metainf.selector.descriptions import (
    Entity,
    format_value,
    hardware_entity,
    model_entity,
    workload_entity,
    workload_key,
)
from metainf.selector.fit import memory_of_facts

log = logging.getLogger(__name__)

OBJECTIVES = ("runtime", "throughput", "cost")
"""What 'best' means: best predicted performance (runtime/throughput) or lowest cost."""

_SPEC_KEYS = ("dataset", "num_prompts", "max_output_tokens", "seed", "path", "options")
_STAT_PREFIXES = ("input_len_", "output_len_", "total_input_tokens", "total_output_tokens",
                  "shared_prefix_ratio")
DEFAULT_VOCAB_SIZE = 32000
"""Vocabulary used to generate a workload's token ids when the model does not say."""


class SelectionError(ValueError):
    """A Select query that cannot be answered as asked; `field` names the culprit."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class HardwareOption:
    """One hardware to choose on: a known/catalog name or a free-text spec, maybe a price,
    and how many of it (`count`, or a leading 'Nx' of the name or text; default 1)."""

    name: str = ""
    text: str = ""
    price_per_hour: float | None = None
    profile: Mapping[str, Any] | None = None
    count: int | None = None

    def parts(self) -> tuple[int, str, str]:
        """(count, name, text): a leading 'Nx' of the name or text read as the count."""
        name_n, name = split_count(self.name.strip())
        text_n, text = split_count(self.text.strip())
        stated = self.count if self.count is not None else (name_n or text_n)
        return (1 if stated is None else int(stated)), name, text

    @property
    def label(self) -> str:
        """How answers name this option ('4x NVIDIA H100 80GB' for four of them)."""
        count, name, text = self.parts()
        base = (name or text).strip()
        return f"{count}x {base}" if count != 1 and base else base


@dataclass(frozen=True)
class SelectQuery:
    """A Select request: model, hardware options, workload, methods, budget, objective."""

    model: str = ""
    model_text: str = ""
    hardware: tuple[HardwareOption, ...] = ()
    workload: Mapping[str, Any] | str | None = None
    methods: tuple[str, ...] = ()
    budget: float | None = None
    objective: str = "runtime"
    unseen: str = "anchored"
    risk: str = "upper"


RISKS = ("upper", "expected")
"""How a budget reads a predicted cost: at the upper end of its 80 % interval (a
candidate is within budget only when it is very likely to be), or the point estimate."""

UNSEEN_MODES = ("anchored", "model")
"""How unseen hardware is scored: `anchored` ranks methods as on the nearest known
hardware and shifts them to the level the model predicts for the unseen one; `model`
uses the model's prediction on the unseen hardware's features alone."""


@dataclass
class ResolvedOption:
    """A hardware option resolved: its entity, candidate methods, price (for all `count`
    of it), nearest known, and its memory (per device, GiB) and device count in all."""

    label: str
    entity: Entity
    methods: list[str]
    price: float | None
    nearest: str | None = None
    count: int = 1
    memory_per_device_gib: float | None = None
    devices: int = 1


_STATS_CACHE: dict[str, dict[str, Any]] = {}
_STATS_LOCK = threading.Lock()


def resolve_model(model: TrainedModel, query: SelectQuery) -> Entity | None:
    axes = model.featurizer.axes_
    name, text = (query.model or "").strip(), (query.model_text or "").strip()
    if "model" not in axes:
        return None
    if not name and not text:
        raise SelectionError("model", "empty: give a model name (--model) or a description "
                                      "(--model-text)")
    known = model.known.get("model", {})
    if name:
        if name in known:
            return known[name]
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            return known[lowered[name.lower()]]
        log.warning("model %r was not in the training data; describing it from its "
                    "catalog entry or name", name)
        if text:
            return model_entity(name, None, text)
        return model.featurizer.describer_.model(name)
    return model_entity(text, None, text)


def _parse_workload(raw: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise SelectionError("workload", "empty: give a JSON object")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SelectionError("workload", f"not valid JSON ({exc.msg} at char {exc.pos})"
                                 ) from None
    if not isinstance(raw, Mapping):
        raise SelectionError("workload", f"must be a JSON object, got {type(raw).__name__}")
    return dict(raw)


def _farm_stats(obj: dict[str, Any], meta: Mapping[str, Any], vocab_size: int
                ) -> tuple[str, dict[str, Any]]:
    """Label and statistics of a farm workload given as a spec (computed when new)."""
    from pydantic import ValidationError

    from metainf import workloads as wl

    spec_fields = {k: obj[k] for k in _SPEC_KEYS if k in obj}
    try:
        spec = wl.WorkloadSpec(**spec_fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "spec"
        raise SelectionError("workload", f"{where}: {first.get('msg')}") from None
    label = wl.workload_label(spec)
    known = meta.get("workloads", {})
    if label in known:
        return label, {**known[label].get("spec", {}), **known[label].get("stats", {})}
    cache_key = f"{label}|{vocab_size}"
    with _STATS_LOCK:
        cached = _STATS_CACHE.get(cache_key)
    if cached is None:
        try:
            spec = wl.materialize(spec) if spec.dataset in wl.FILE_DATASETS else spec
            requests = wl.build_requests(spec, vocab_size)
            cached = {**spec.model_dump(exclude={"records"}),
                      **wl.workload_stats(spec, requests)}
        except (wl.WorkloadError, OSError, ValueError) as exc:
            raise SelectionError("workload", f"cannot build workload {label}: {exc}") from None
        with _STATS_LOCK:
            _STATS_CACHE[cache_key] = cached
    return label, dict(cached)


def resolve_workload(model: TrainedModel, raw, model_entity_: Entity | None) -> Entity:
    obj = _parse_workload(raw)
    describer = model.featurizer.describer_
    cols = list(model.mapping.workload_cols)
    known = model.known.get("workload", {})
    if not describer.is_farm:
        missing = [c for c in cols if c not in obj]
        extra = sorted(k for k in obj if k not in cols)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if extra:
                parts.append(f"unknown column(s) {extra}")
            raise SelectionError("workload", "; ".join(parts) + f"; this model's workload "
                                             f"columns are {cols}")
        values = {c: obj[c] for c in cols}
        bad = [c for c, v in values.items() if v is None or (isinstance(v, float)
                                                             and not math.isfinite(v))]
        if bad:
            raise SelectionError("workload", f"column(s) {bad} have no value")
        key = workload_key(values.values())
        return known.get(key) or describer.workload(values)
    # Farm workloads: a label, a spec, or statistics, plus the batch size.
    rest_cols = [c for c in cols if c not in ("workload", "batch_size")]
    stat_keys = [k for k in obj if k.startswith(_STAT_PREFIXES)]
    allowed = set(_SPEC_KEYS) | {"workload", "batch_size"} | set(stat_keys) | set(rest_cols)
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        raise SelectionError("workload", f"unknown key(s) {unknown}; give a workload label "
                             "('workload'), a spec (dataset, num_prompts, max_output_tokens, "
                             "seed, options) or statistics, plus batch_size")
    bs = None
    if "batch_size" in cols:
        bs = obj.get("batch_size")
        if isinstance(bs, bool) or not isinstance(bs, (int, float)) or not bs > 0 \
                or not math.isfinite(bs):
            raise SelectionError("workload", f"batch_size must be a positive number "
                                             f"(got {bs!r})")
    missing_rest = [c for c in rest_cols if c not in obj]
    if missing_rest:
        raise SelectionError("workload", f"missing column(s) {missing_rest}")
    rest = {c: obj[c] for c in rest_cols}
    meta = describer.meta
    if "workload" in obj:
        label = format_value(obj["workload"])
        if label not in meta.get("workloads", {}):
            some = sorted(meta.get("workloads", {}))[:8]
            raise SelectionError("workload", f"unknown workload label {label!r}; known: {some}"
                                 " (or give a spec such as {\"dataset\": ..., \"num_prompts\": "
                                 "...})")
        values = {"workload": label, "batch_size": bs, **rest}
        key = workload_key([values[c] for c in cols])
        if key in known and not stat_keys:
            return known[key]
        stats = {**meta["workloads"][label].get("spec", {}),
                 **meta["workloads"][label].get("stats", {})}
    elif "dataset" in obj:
        vocab = DEFAULT_VOCAB_SIZE
        if model_entity_ is not None and model_entity_.facts.get("vocab_size"):
            vocab = int(model_entity_.facts["vocab_size"])
        label, stats = _farm_stats(obj, meta, vocab)
        values = {"workload": label, "batch_size": bs, **rest}
        key = workload_key([values[c] for c in cols])
        if key in known and not stat_keys:
            return known[key]
    elif stat_keys:
        label, stats = "custom workload", {}
    else:
        raise SelectionError("workload", "give a workload label ('workload'), a spec "
                             "('dataset', 'num_prompts', ...) or statistics "
                             "('input_len_p50', ...)")
    for k in stat_keys:
        try:
            stats[k] = float(obj[k])
        except (TypeError, ValueError):
            raise SelectionError("workload", f"{k} must be a number (got {obj[k]!r})") from None
    values = {"workload": label, "batch_size": bs, **rest}
    key = workload_key([values.get(c) for c in cols])
    return workload_entity(key, label, stats, bs, rest)


def _check_price(label: str, price: float | None) -> float | None:
    if price is None:
        return None
    try:
        p = float(price)
    except (TypeError, ValueError):
        raise SelectionError("hardware", f"{label}: price_per_hour must be a number") from None
    if not math.isfinite(p) or p < 0:
        raise SelectionError("hardware", f"{label}: price_per_hour must be >= 0 (got {price})")
    return p


def _check_count(label: str, opt: HardwareOption) -> int:
    """The option's count, checked: 1..MAX_COUNT, and the same where field and text say."""
    count, _, _ = opt.parts()
    stated = [n for n in (split_count(opt.name.strip())[0], split_count(opt.text.strip())[0])
              if n is not None]
    if opt.count is not None and any(n != opt.count for n in stated):
        raise SelectionError("hardware", f"{label}: count {opt.count} disagrees with the "
                                         f"'{stated[0]}x' its name or text starts with")
    if not 1 <= count <= MAX_COUNT:
        raise SelectionError("hardware", f"{label}: count must be between 1 and {MAX_COUNT} "
                                         f"(got {count})")
    return count


def _unseen_hardware(model: TrainedModel, opt: HardwareOption, label: str,
                     price: float | None) -> tuple[HardwareFacts, Entity, str | None]:
    """Facts, description and nearest known hardware of an unseen option (cached); the
    facts count every device of the option (its own devices x its count)."""
    count, name, text = opt.parts()
    key = json.dumps(["hw", label, name, text, count, price,
                      dict(opt.profile) if opt.profile is not None else None],
                     sort_keys=True, default=str)
    hit = model.cache.get(key)
    if hit is None:
        if opt.profile is not None:
            facts = facts_from_profile(dict(opt.profile), price)
        else:
            facts = facts_from_text(text or name)
        if count != 1:
            facts = facts.replace(count=facts.count * count)
        entity = hardware_entity(label, facts, text=text or name)
        hit = (facts, entity, model.nearest_hardware(entity))
        if len(model.cache) < 4096:
            model.cache[key] = hit
    return hit


def resolve_hardware(model: TrainedModel, options: Sequence[HardwareOption]
                     ) -> list[ResolvedOption]:
    has_axis = "hardware" in model.featurizer.axes_
    if not options:
        if has_axis:
            raise SelectionError("hardware", "give at least one hardware option (a name or a "
                                             "text description)")
        return [ResolvedOption(label="", entity=None, methods=list(model.methods), price=None)]
    known = model.known.get("hardware", {})
    lowered = {k.lower(): k for k in known}
    out = []
    for i, opt in enumerate(options):
        label = opt.label
        if not label:
            raise SelectionError("hardware", f"option {i + 1} has neither a name nor a text")
        price = _check_price(label, opt.price_per_hour)
        count = _check_count(label, opt)
        if not has_axis:
            out.append(ResolvedOption(label, None, list(model.methods),
                                      None if price is None else price * count, count=count))
            continue
        _, name, text = opt.parts()
        hit = None
        for candidate in (name.strip(), text.strip()):
            if candidate and candidate.lower() in lowered:
                hit = lowered[candidate.lower()]
                break
        if hit is not None:
            # A measured class, `count` copies of it: its entity as trained, memory and
            # price times count.
            p = price if price is not None else model.prices.get(hit)
            mem, devices = memory_of_facts(known[hit].facts)
            out.append(ResolvedOption(label, known[hit],
                                      list(model.methods_by_hardware.get(hit, [])),
                                      None if p is None else p * count, count=count,
                                      memory_per_device_gib=mem, devices=devices * count))
            continue
        facts, entity, nearest = _unseen_hardware(model, opt, label, price)
        methods = list(model.methods_by_hardware.get(nearest, model.methods)) if nearest \
            else list(model.methods)
        p = price if price is not None else facts.price_per_hour
        mem, _ = memory_of_facts({"memory_gb": facts.memory_gb} if facts.memory_gb else {})
        out.append(ResolvedOption(label, entity, methods, None if p is None else p * count,
                                  nearest, count=count, memory_per_device_gib=mem,
                                  devices=max(int(facts.count), 1)))
    return out


def resolve_methods(model: TrainedModel, methods: Sequence[str]) -> list[str]:
    out = []
    for m in methods:
        name = (m or "").strip()
        if not name:
            raise SelectionError("methods", "a method name is empty")
        if name in model.methods:
            out.append(name)
            continue
        try:
            canonical = method_from_name(name).name
        except MethodError:
            raise SelectionError(
                "methods", f"unknown method {name!r}: not among the model's methods "
                f"({', '.join(model.methods)}) and not a flag combination such as 'cb+pc'"
            ) from None
        out.append(canonical)
    return list(dict.fromkeys(out))


def check_query(query: SelectQuery) -> None:
    if query.objective not in OBJECTIVES:
        raise SelectionError("objective", f"unknown objective {query.objective!r}; use one of "
                                          f"{', '.join(OBJECTIVES)}")
    if query.risk not in RISKS:
        raise SelectionError("risk", f"unknown risk {query.risk!r}; use one of "
                                     f"{', '.join(RISKS)}")
    if query.unseen not in UNSEEN_MODES:
        raise SelectionError("unseen", f"unknown mode {query.unseen!r}; use one of "
                                       f"{', '.join(UNSEEN_MODES)}")
    if query.budget is not None:
        try:
            b = float(query.budget)
        except (TypeError, ValueError):
            raise SelectionError("budget", f"must be a number (got {query.budget!r})") from None
        if not math.isfinite(b) or b < 0:
            raise SelectionError("budget", f"must be a finite number >= 0 (got {query.budget})")
