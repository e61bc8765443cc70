"""Grid files: validation (unknown keys refused by name) and expansion into cells."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from metainf.methods import Method, MethodError, engine_key, parse_methods
from metainf.models import known_models, planning_only
from metainf.workloads import WorkloadError, WorkloadSpec, materialize, workload_label

DEFAULT_TOLERANCE = 0.2
"""Two done copies agree when their median runtimes differ by at most this share of the
smaller one (a grid's `replica_tolerance`)."""

REPLICA_VERDICTS = ("waiting", "agreed", "disputed")

STRATEGIES = ("full", "active")
"""How a campaign chooses its cells (a grid's `strategy`): every cell of the grid, or
(`active`) the cells the serving model ranks most worth measuring, up to `max_cells` or
until every task is decided at `confidence`."""

DEFAULT_CONFIDENCE = 0.9
"""Confidence at which an active campaign counts a task as decided (a grid's `confidence`)."""
"""States of a group of copies of one cell (replicas)."""


class GridError(ValueError):
    """A grid file that cannot be run; the message names the field and what to fix."""


class WorkloadEntry(BaseModel):
    """One `workloads` entry: a workload spec plus the batch sizes to run it at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    num_prompts: int
    batch_size: list[int]
    max_output_tokens: int = 128
    seed: int = 0
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    records: list[dict[str, Any]] | None = None

    @field_validator("batch_size", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("batch_size needs at least one value")
        bad = [b for b in v if b <= 0 or b > 4096]
        if bad:
            raise ValueError(f"batch sizes must be between 1 and 4096, got {bad}")
        return sorted(set(v))

    def spec(self) -> WorkloadSpec:
        """The workload without its batch sizes."""
        return WorkloadSpec(**self.model_dump(exclude={"batch_size"}, exclude_none=True))


class Grid(BaseModel):
    """A campaign's grid: models x methods x workloads (x batch sizes) x hardware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    models: list[str] = Field(min_length=1)
    methods: str | list[str | dict[str, Any]] = "paper8"
    workloads: list[WorkloadEntry] = Field(min_length=1)
    hardware: Literal["all"] | list[str] = "all"
    repetitions: int = Field(default=3, ge=1, le=100)
    replicas: int = Field(default=1, ge=1, le=5)
    replica_tolerance: float = Field(default=DEFAULT_TOLERANCE, gt=0, le=10)
    timeout_s: float = Field(default=1800.0, gt=0, le=86400)
    strategy: Literal["full", "active"] = "full"
    max_cells: int | None = Field(default=None, ge=1)
    confidence: float = Field(default=DEFAULT_CONFIDENCE, ge=0, le=1)
    interleave: bool = False
    """Repetitions as rounds: one cell per repetition, round r of every cell that shares a
    warm engine before round r + 1 of any, so that a spell of load spreads over methods and
    tasks instead of falling on one cell's repetitions back to back."""

    @model_validator(mode="after")
    def _active_keys(self) -> Grid:
        if self.strategy != "active" and self.max_cells is not None:
            raise ValueError("max_cells: only an active campaign (strategy: active) stops "
                             "early; a full campaign runs every cell")
        if self.interleave and self.replicas > 1:
            raise ValueError("interleave: replicated cells (replicas > 1) compare whole "
                             "cells; use one or the other")
        if self.interleave and self.strategy == "active":
            raise ValueError("interleave: an active campaign chooses single cells; run it "
                             "with interleave: false")
        return self

    def parsed_methods(self) -> list[Method]:
        """The grid's methods as Method objects."""
        return parse_methods(self.methods)


@dataclass(frozen=True)
class CellTemplate:
    """One cell of a grid before it is bound to a hardware class."""

    model: str
    method: Method
    workload: WorkloadSpec
    workload_label: str
    batch_size: int
    replica: int
    round: int | None = None
    """The repetition this cell measures when the grid interleaves (None: all of them)."""

    @property
    def engine_key(self) -> str:
        """The engine this cell needs (model + engine configuration)."""
        return engine_key(self.model, self.method)

    def cell_id(self, campaign_id: str, hardware_class: str) -> str:
        """A stable id for this cell on one hardware class of one campaign."""
        return cell_id(campaign_id, hardware_class, self.to_row())

    def to_row(self) -> dict[str, Any]:
        """The cell as one JSON-ready row of a campaign's stored template."""
        row = {"model": self.model, "method": self.method.name,
               "method_json": json.dumps(self.method.to_dict()),
               "workload_label": self.workload_label,
               "workload_json": self.workload.model_dump_json(exclude_none=True),
               "batch_size": self.batch_size, "replica": self.replica,
               "engine_key": self.engine_key}
        if self.round is not None:
            row["round"] = self.round
        return row


def cell_id(campaign_id: str, hardware_class: str, row: dict[str, Any]) -> str:
    """A stable id for a template row (a cell) on one hardware class of one campaign."""
    key = [campaign_id, hardware_class, row["model"], row["method"], row["workload_label"],
           row["batch_size"], row["replica"]]
    if row.get("round") is not None:
        key.append(row["round"])
    blob = json.dumps(key)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _format_validation(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "grid"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = f"unknown key {first['loc'][-1]!r}"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{where}: {msg}{more}"


def validate_grid(data: Any) -> Grid:
    """Validate a grid object; raise GridError naming the first problem."""
    if not isinstance(data, dict):
        raise GridError("grid: expected a mapping with models, methods, workloads")
    try:
        grid = Grid.model_validate(data)
    except ValidationError as exc:
        raise GridError(_format_validation(exc)) from None
    try:
        grid.parsed_methods()
    except MethodError as exc:
        raise GridError(f"methods: {exc}") from None
    catalog = set(known_models())
    for model in grid.models:
        if model not in catalog and "/" not in model:
            raise GridError(
                f"models: unknown model {model!r}; use a catalog name "
                f"({', '.join(sorted(catalog))}) or a path to a local HF model directory"
            )
        if model in catalog and planning_only(model):
            raise GridError(
                f"models: {model!r} is in the catalog for place-and-route planning only "
                f"(`metainf place`), too large to run whole on one worker"
            )
    for i, entry in enumerate(grid.workloads):
        try:
            entry.spec()
        except ValidationError as exc:
            raise GridError(f"workloads.{i}.{_format_validation(exc)}") from None
    return grid


def load_grid_file(path: str | Path) -> Grid:
    """Read, validate and materialise a grid file (YAML or JSON) for submission.

    File datasets are sampled here, relative to the grid file, so that workers need
    not hold the file and the campaign is reproducible from the database alone.
    """
    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML/JSON ({exc})") from None
    grid = validate_grid(data)
    for model in grid.models:
        if "/" in model and not (Path(model) / "config.json").is_file():
            raise GridError(f"models: {model!r} is not a directory with a config.json")
    entries = []
    for i, entry in enumerate(grid.workloads):
        try:
            spec = materialize(entry.spec(), base_dir=path.parent)
        except WorkloadError as exc:
            raise GridError(f"workloads.{i}: {exc}") from None
        entries.append(WorkloadEntry(batch_size=entry.batch_size,
                                     **spec.model_dump(mode="json", exclude_none=True)))
    return grid.model_copy(update={"workloads": entries})


def template(grid: Grid) -> list[dict[str, Any]]:
    """A validated grid expanded once, as its campaign stores it: one row per cell."""
    return [t.to_row() for t in expand(grid)]


def expand(grid: Grid) -> list[CellTemplate]:
    """Every cell of a grid for one hardware class: model x method x workload x batch x replica,
    and, when the grid interleaves, one such block per repetition (round-major)."""
    methods = grid.parsed_methods()
    rounds = range(grid.repetitions) if grid.interleave else [None]
    cells = []
    for rnd in rounds:
        for model in grid.models:
            for method in methods:
                for entry in grid.workloads:
                    spec = entry.spec()
                    label = workload_label(spec)
                    for batch in entry.batch_size:
                        for replica in range(grid.replicas):
                            cells.append(CellTemplate(model, method, spec, label, batch,
                                                      replica, rnd))
    return cells
