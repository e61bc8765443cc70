"""Campaigns: storing a validated grid with its metadata, and the rows and meta of its P."""

from __future__ import annotations

import json
import logging
from typing import Any

from metainf.coordinator.store import Store
from metainf.grid import GridError, WorkloadEntry, template, validate_grid
from metainf.methods import method_from_dict, wire_fields
from metainf.models import ModelError, config_summary, resolve_model
from metainf.p import METRIC_COLUMNS
from metainf.v1 import farm_pb2
from metainf.workloads import (
    WorkloadError,
    build_requests,
    materialize,
    workload_label,
    workload_stats,
)

log = logging.getLogger(__name__)

STATS_VOCAB = 32000
"""Vocabulary used to build requests when computing a workload's statistics."""


def _model_summary(model: str) -> dict[str, Any]:
    try:
        return config_summary(resolve_model(model).config)
    except (ModelError, OSError) as exc:
        log.warning("no config summary for model %s: %s", model, exc)
        return {}


def create(store: Store, grid_obj: dict[str, Any]) -> tuple[str, int]:
    """Validate a grid, compute its workload statistics and store it; return (id, cells)."""
    grid = validate_grid(grid_obj)
    entries, workloads = [], {}
    for i, entry in enumerate(grid.workloads):
        try:
            spec = materialize(entry.spec())
            stats = workload_stats(spec, build_requests(spec, STATS_VOCAB))
        except WorkloadError as exc:
            raise GridError(f"workloads.{i}: {exc}") from None
        workloads[workload_label(spec)] = {"spec": spec.model_dump(mode="json", exclude={"records"},
                                                                   exclude_none=True),
                                           "stats": stats}
        entries.append(WorkloadEntry(batch_size=entry.batch_size,
                                     **spec.model_dump(mode="json", exclude_none=True)))
    grid = grid.model_copy(update={"workloads": entries})
    meta = {
        "workloads": workloads,
        "models": {m: {"summary": _model_summary(m)} for m in grid.models},
        "methods": {m.name: m.to_dict() for m in grid.parsed_methods()},
        "grid": {"name": grid.name, "repetitions": grid.repetitions, "replicas": grid.replicas,
                 "hardware": grid.hardware},
    }
    cells = template(grid)
    campaign_id = store.add_campaign(grid.name, grid.model_dump(mode="json", exclude_none=True),
                                     meta, cells)
    return campaign_id, len(cells)


def export_meta(store: Store, campaign_id: str) -> dict[str, Any]:
    """The `.meta.json` of a campaign's P: workloads, hardware classes, models, methods."""
    campaign = store.campaign(campaign_id)
    meta = json.loads(campaign["meta_json"])
    bound = set(store.bound_classes(campaign_id))
    meta["hardware"] = {
        h["label"]: {"class_id": h["class_id"], "profile": json.loads(h["profile_json"]),
                     "price_per_hour": h["price_per_hour"]}
        for h in store.hardware_classes() if h["class_id"] in bound
    }
    meta["campaign_id"] = campaign_id
    meta["name"] = campaign["name"]
    meta["created_at"] = campaign["created_at"]
    return meta


def result_row(r: dict[str, Any]) -> farm_pb2.ResultRow:
    """A stored result (joined with its cell) as a ResultRow message."""
    method = method_from_dict(json.loads(r["method_json"]))
    workload = json.loads(r["workload_json"])
    run = farm_pb2.RunResult(repetition=r["repetition"], status=r["status"], error=r["error"])
    for name in METRIC_COLUMNS:
        if r[name] is not None:
            setattr(run, name, r[name])
    return farm_pb2.ResultRow(
        campaign_id=r["campaign_id"], cell_id=r["cell_id"], model=r["model"],
        **wire_fields(method, with_engine_args=False), hardware=r["hardware"],
        worker=r["worker_name"] or r["worker_id"], dataset=workload["dataset"],
        batch_size=r["batch_size"], num_prompts=workload["num_prompts"],
        max_output_tokens=workload.get("max_output_tokens", 0), repetition=r["repetition"],
        replica=r["replica"], run=run, engine=r["engine"], engine_version=r["engine_version"],
        weights=r["weights"], engine_config_json=r["engine_config_json"],
        workload=r["workload_label"], engine_start_s=r["engine_start_s"] or 0.0,
        accepted=bool(r["accepted"]))
