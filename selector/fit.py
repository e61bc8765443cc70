"""Memory fit of Select's candidates, and the margin the training table's oom cells set.

The rule is :mod:`metainf.memory`'s; this module finds its inputs: the model's config
summary (the training meta, the model catalog, or what its name or description states),
the workload's lengths and batch size, each hardware option's memory and devices, each
method's KV-cache dtype; and the oom cells that :class:`PerfTable` kept in its meta.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from metainf.memory import (
    MarginCalibration,
    MemoryFit,
    ModelMemory,
    WorkloadShape,
    calibrate_margin,
    check_fit,
    memory_need,
    model_memory,
    workload_shape,
)
from metainf.methods import MethodError, method_from_name
from metainf.p import OOM_CELLS_KEY
from metainf.selector.artifact import TrainedModel
from metainf.selector.descriptions import Entity, catalog_model_summary, summary_from_text

log = logging.getLogger(__name__)

_LENGTH_COLUMN = re.compile(r"len|length|tokens?\b|seq", re.IGNORECASE)
"""External-table workload columns read as tokens per sequence (summed when several)."""


def model_summary(model: TrainedModel, name: str = "", text: str = "") -> dict[str, Any]:
    """A model's config summary: the training meta's, the catalog's, or its name/text parsed."""
    meta_models = model.featurizer.describer_.meta.get("models", {}) or {}
    if name:
        lowered = {k.lower(): k for k in meta_models}
        key = lowered.get(name.strip().lower())
        summary = (meta_models.get(key) or {}).get("summary") if key else None
        if summary:
            return dict(summary)
        summary = catalog_model_summary(name)
        if summary:
            return summary
    parsed = summary_from_text(text) if text else {}
    if name and not parsed.get("parameters"):
        parsed = {**summary_from_text(name), **parsed}
    return parsed


def model_memory_of(model: TrainedModel, name: str = "", text: str = "") -> ModelMemory | None:
    """The model's memory shape (cached per name and text), None when its size is unknown."""
    key = json.dumps(["model-memory", name, text])
    if key not in model.cache:
        model.cache[key] = model_memory(model_summary(model, name, text), name or text)
    return model.cache[key]


def workload_shape_of(entity: Entity | None) -> WorkloadShape | None:
    """Sequences in flight and tokens per sequence of a workload entity (farm statistics,
    or an external table's batch and length columns by name), None when unknown."""
    if entity is None:
        return None
    facts = entity.facts
    columns = {k[4:]: v for k, v in facts.items() if k.startswith("col:")}
    batch = facts.get("batch_size")
    if batch is None:
        batch = next((v for c, v in columns.items() if "batch" in c.lower()), None)
    shape = workload_shape(facts, batch)
    if shape is not None or not batch:
        return shape
    lengths = {c: v for c, v in columns.items()
               if "batch" not in c.lower() and _LENGTH_COLUMN.search(c) and v > 0}
    if not lengths:
        return None
    return WorkloadShape(sequences=int(math.ceil(batch)),
                         tokens_per_sequence=float(sum(lengths.values())),
                         basis=" + ".join(lengths))


def kv_dtype_of(model: TrainedModel, method: str) -> str | None:
    """The KV-cache dtype a method's engine options set (e.g. 'fp8'), None for the model's."""
    info = model.featurizer.describer_.meta.get("methods", {}).get(method) or {}
    args = info.get("engine_args")
    if args is None:
        try:
            args = method_from_name(method).engine_args
        except MethodError:
            args = {}
    value = (args or {}).get("kv_cache_dtype")
    return str(value) if value else None


def memory_of_facts(facts: Mapping[str, float]) -> tuple[float | None, int]:
    """(memory per device in GiB, devices) from a hardware entity's facts."""
    mem = facts.get("memory_gb")
    ok = mem is not None and math.isfinite(mem) and mem > 0
    return (float(mem) if ok else None), max(int(facts.get("device_count") or 1), 1)


def _oom_cell_size(model: TrainedModel, cell: Mapping[str, Any]) -> tuple[float, float] | None:
    """(need GiB, memory GiB) of one oom cell of the training table, None when unsized."""
    describer = model.featurizer.describer_
    mapping = describer.mapping
    try:
        if not (mapping.model_col and mapping.hardware_col):
            return None
        mm = model_memory_of(model, str(cell[mapping.model_col]))
        hw = describer.hardware(str(cell[mapping.hardware_col]))
        values = {c: cell[c] for c in mapping.workload_cols}
        workload = describer.workload(values)
    except (KeyError, ValueError, TypeError) as exc:
        log.debug("oom cell %s not sized: %s", cell, exc)
        return None
    mem, devices = memory_of_facts(hw.facts)
    if mm is None or mem is None:
        return None
    method = cell.get(mapping.method_col)
    if method:
        mm = mm.with_kv_dtype(kv_dtype_of(model, str(method)))
    need = memory_need(mm, workload_shape_of(workload))
    return need.total_gib, mem * devices


def margin_of(model: TrainedModel) -> MarginCalibration:
    """The memory margin of a trained model: the default, raised by its table's oom cells."""
    hit = model.cache.get("memory-margin")
    if hit is None:
        cells = model.featurizer.describer_.meta.get(OOM_CELLS_KEY) or []
        hit = calibrate_margin(_oom_cell_size(model, c) for c in cells)
        if cells:
            log.info("model %s: %s", model.version, hit.describe())
        model.cache["memory-margin"] = hit
    return hit


def candidate_fits(model: TrainedModel, memory: ModelMemory | None,
                   workload: Entity | None, options: Sequence[Any],
                   pairs: Sequence[tuple[int, str]], margin: float) -> list[MemoryFit | None]:
    """The memory fit of each (option index, method) pair; None where it cannot be sized
    (model size or hardware memory unknown), which never makes a candidate infeasible."""
    if memory is None:
        return [None] * len(pairs)
    shape = workload_shape_of(workload)
    needs: dict[str | None, Any] = {}
    out: list[MemoryFit | None] = []
    for i, method in pairs:
        opt = options[i]
        if opt.memory_per_device_gib is None:
            out.append(None)
            continue
        kv = kv_dtype_of(model, method)
        if kv not in needs:
            needs[kv] = memory_need(memory.with_kv_dtype(kv), shape)
        out.append(check_fit(needs[kv], opt.memory_per_device_gib, opt.devices, margin))
    return out
