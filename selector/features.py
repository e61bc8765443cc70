"""Task and method features: description embeddings reduced by truncated SVD, plus facts.

Per axis (workload, model, hardware; method separately) the featurizer embeds each
distinct entity's description, reduces the embeddings with a TruncatedSVD fitted on the
training tasks' entities only, and appends standardised numeric facts. Style
``onehot`` replaces both with one-hot identities (unseen values encode as zeros).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.decomposition import TruncatedSVD
from sklearn.utils.validation import check_is_fitted

from metainf.selector.descriptions import Entity, TableDescriber, check_style
from metainf.selector.embeddings import Embedder
from metainf.selector.roofline import FEATURES as ROOFLINE_FEATURES
from metainf.selector.roofline import roofline_features
from metainf.selector.table import PerfTable

log = logging.getLogger(__name__)

MAX_CACHED_VECTORS = 10_000
"""Reduced vectors an AxisEncoder keeps (its training texts first): texts first seen at
Select time are cached until then and computed afresh after, so a long-serving
coordinator does not grow with every new hardware text a client sends."""


SVD_TOLERANCE = 1e-5
"""Reduced description components closer than this are one value. Two entities can
project onto a component equally in exact arithmetic (with two training entities the
first component is their bisector) and yet differ by float rounding, which moves with
library versions; a tree that splits on that difference sends a new entity to whichever
side its rounding fell (a held-out H100 went with the A100, not with its twin). The
components are unit-scale (embeddings are normalised), so 1e-5 is far above float32
rounding and far below a real difference between descriptions."""


def merged_levels(values: np.ndarray, tol: float = SVD_TOLERANCE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``values`` with runs closer than ``tol`` merged into their
    mean (sorted), and ``values`` with each replaced by its run's mean."""
    values = np.asarray(values, dtype=float)
    v, inverse = np.unique(values, return_inverse=True)
    run = np.concatenate([[0], np.cumsum(np.diff(v) > tol)]).astype(int)
    levels = np.bincount(run, weights=v) / np.bincount(run)
    return levels, levels[run[inverse.reshape(-1)]]


def onto_levels(x: np.ndarray, levels: np.ndarray, tol: float = SVD_TOLERANCE) -> np.ndarray:
    """``x`` with each value within ``tol`` of a level replaced by that level."""
    x = np.asarray(x, dtype=float)
    if levels.size == 0:
        return x
    at = np.searchsorted(levels, x)
    lo = levels[np.clip(at - 1, 0, levels.size - 1)]
    hi = levels[np.clip(at, 0, levels.size - 1)]
    nearest = np.where(np.abs(x - lo) <= np.abs(x - hi), lo, hi)
    return np.where(np.abs(x - nearest) <= tol, nearest, x)


class AxisEncoder(BaseEstimator):
    """Features of one axis: SVD of description embeddings + scaled facts, or one-hot."""

    def __init__(self, axis: str, style: str = "rich", svd_k: int = 16, numeric: bool = True,
                 seed: int = 0):
        self.axis = axis
        self.style = style
        self.svd_k = svd_k
        self.numeric = numeric
        self.seed = seed

    def fit(self, entities: Sequence[Entity], embedder: Embedder | None) -> AxisEncoder:
        """Fit on the distinct training entities of this axis."""
        entities = list({e.key: e for e in entities}.values())
        if not entities:
            raise ValueError(f"no {self.axis} entities to fit on")
        self.svd_ = None
        self.levels_: list[np.ndarray] | None = None
        self.vectors_: dict[str, np.ndarray] = {}
        self.categories_: list[tuple[str, str]] = []
        if self.style == "onehot":
            seen = sorted({p for e in entities for p in e.identity()})
            self.categories_ = seen
            self.fact_names_: list[str] = []
        else:
            texts = [e.text(self.style) for e in entities]
            emb = embedder.encode(texts)
            k = min(int(self.svd_k), len(entities) - 1, emb.shape[1] - 1)
            if k >= 1:
                self.svd_ = TruncatedSVD(n_components=k, random_state=self.seed).fit(emb)
                merged = [merged_levels(col) for col in self.svd_.transform(emb).T]
                self.levels_ = [levels for levels, _ in merged]
                reduced = np.column_stack([values for _, values in merged])
                self.vectors_ = dict(zip(texts, reduced, strict=True))
            self.fact_names_ = (sorted({n for e in entities for n in e.facts})
                                if self.numeric else [])
        raw = self._raw_facts(entities)
        with np.errstate(all="ignore"):
            mean = np.nanmean(raw, axis=0) if raw.size else np.zeros(0)
            std = np.nanstd(raw, axis=0) if raw.size else np.zeros(0)
        self.fact_mean_ = np.nan_to_num(mean, nan=0.0)
        self.fact_scale_ = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return self

    def _onto_levels(self, reduced: np.ndarray) -> np.ndarray:
        """Reduced vectors with each component merged onto the training levels (see
        :data:`SVD_TOLERANCE`); a model fitted before the levels keeps its values."""
        levels = getattr(self, "levels_", None)
        if levels is None:
            return reduced
        return np.column_stack([onto_levels(col, lv) for col, lv in zip(reduced.T, levels,
                                                                         strict=True)])

    def _raw_facts(self, entities: Sequence[Entity]) -> np.ndarray:
        names = getattr(self, "fact_names_", [])
        out = np.full((len(entities), len(names)), np.nan)
        for i, e in enumerate(entities):
            for j, n in enumerate(names):
                v = e.facts.get(n)
                if v is not None:
                    out[i, j] = float(v)
        return out

    @property
    def n_features(self) -> int:
        """Width of this axis's features."""
        if self.style == "onehot":
            return len(self.categories_)
        k = self.svd_.n_components if self.svd_ is not None else 0
        return k + len(self.fact_names_)

    def feature_names(self) -> list[str]:
        """Names of this axis's feature columns."""
        if self.style == "onehot":
            return [f"{self.axis}[{c}={v}]" for c, v in self.categories_]
        k = self.svd_.n_components if self.svd_ is not None else 0
        return [f"{self.axis}:svd{i}" for i in range(k)] + [
            f"{self.axis}:{n}" for n in self.fact_names_]

    def transform(self, entities: Sequence[Entity], embedder: Embedder | None) -> np.ndarray:
        """Features [len(entities), n_features]; unseen texts are embedded on demand."""
        check_is_fitted(self, "fact_mean_")
        n = len(entities)
        if self.style == "onehot":
            pos = {c: i for i, c in enumerate(self.categories_)}
            out = np.zeros((n, len(self.categories_)))
            for i, e in enumerate(entities):
                for p in e.identity():
                    j = pos.get(p)
                    if j is not None:
                        out[i, j] = 1.0
            return out
        blocks = []
        if self.svd_ is not None:
            texts = [e.text(self.style) for e in entities]
            vectors = {t: self.vectors_[t] for t in texts if t in self.vectors_}
            new = [t for t in dict.fromkeys(texts) if t not in vectors]
            if new:
                reduced = dict(zip(new, self._onto_levels(self.svd_.transform(
                    embedder.encode(new))), strict=True))
                vectors.update(reduced)
                if len(self.vectors_) + len(reduced) <= MAX_CACHED_VECTORS:
                    self.vectors_.update(reduced)
            blocks.append(np.array([vectors[t] for t in texts]).reshape(n, -1))
        if self.fact_names_:
            scaled = (self._raw_facts(entities) - self.fact_mean_) / self.fact_scale_
            blocks.append(np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0))
        if not blocks:
            return np.zeros((n, 0))
        return np.hstack(blocks)


class TaskFeaturizer(BaseEstimator):
    """Featurize tasks and methods of a performance table (sklearn-style fit/transform).

    ``fit`` sees only the training tasks (``task_idx``); descriptions of other tasks come
    from the table's meta or columns at transform time, so held-out entities never move
    the fitted SVDs or scalers.
    """

    def __init__(self, style: str = "rich", svd_k: int = 16, embedder: Embedder | None = None,
                 seed: int = 0, numeric: bool = True):
        self.style = style
        self.svd_k = svd_k
        self.embedder = embedder
        self.seed = seed
        self.numeric = numeric

    # -- fitting ---------------------------------------------------------------------

    def fit(self, table: PerfTable, task_idx=None) -> TaskFeaturizer:
        """Fit per-axis SVDs and scalers on the training tasks' distinct entities."""
        check_style(self.style)
        if int(self.svd_k) < 1:
            raise ValueError(f"svd_k must be at least 1 (got {self.svd_k})")
        self.embedder_ = None if self.style == "onehot" else (self.embedder or Embedder())
        self.describer_ = TableDescriber(table.mapping, table.meta)
        self.mapping_ = table.mapping
        self.axes_ = self.describer_.axes()
        self._entities: dict[tuple[str, str], Entity] = {}
        tasks = table.tasks if task_idx is None else table.tasks.iloc[np.asarray(task_idx)]
        if len(tasks) == 0:
            raise ValueError("no training tasks to fit the featurizer on")
        self.encoders_: dict[str, AxisEncoder] = {}
        for axis in self.axes_:
            values = self._axis_values(axis, tasks)
            uniq = list(dict.fromkeys(values))
            ents = [self.entity(axis, v) for v in uniq]
            self.encoders_[axis] = AxisEncoder(axis, self.style, self.svd_k, self.numeric,
                                               self.seed).fit(ents, self.embedder_)
        method_ents = [self.entity("method", m) for m in table.methods]
        self.method_encoder_ = AxisEncoder("method", self.style, self.svd_k, self.numeric,
                                           self.seed).fit(method_ents, self.embedder_)
        self.methods_ = list(table.methods)
        return self

    def _axis_values(self, axis: str, tasks: pd.DataFrame) -> list:
        m = self.mapping_
        if axis == "model":
            return list(tasks[m.model_col])
        if axis == "hardware":
            return list(tasks[m.hardware_col])
        return list(zip(*(tasks[c] for c in m.workload_cols), strict=True))

    # -- entities --------------------------------------------------------------------

    def entity(self, axis: str, value) -> Entity:
        """The (cached) description of a table value of one axis."""
        key = (axis, self.describer_.value_key(axis, value))
        e = self._entities.get(key)
        if e is None:
            e = self.describer_.entity(axis, value)
            self._entities[key] = e
        return e

    def task_entities(self, tasks_df: pd.DataFrame) -> list[dict[str, Entity]]:
        """Per task row, its entity on each axis."""
        check_is_fitted(self, "encoders_")
        per_axis = {a: [self.entity(a, v) for v in self._axis_values(a, tasks_df)]
                    for a in self.axes_}
        return [{a: per_axis[a][i] for a in self.axes_} for i in range(len(tasks_df))]

    # -- transforming ------------------------------------------------------------------

    def transform_tasks(self, tasks_df: pd.DataFrame) -> np.ndarray:
        """Task features [n_tasks, d] for rows with the table's task columns."""
        check_is_fitted(self, "encoders_")
        missing = [c for c in self.mapping_.task_cols if c not in tasks_df.columns]
        if missing:
            raise ValueError(f"tasks lack column(s) {missing}")
        blocks = []
        for axis in self.axes_:
            values = self._axis_values(axis, tasks_df)
            keys = [self.describer_.value_key(axis, v) for v in values]
            uniq: dict[str, int] = {}
            ents = []
            for k, v in zip(keys, values, strict=True):
                if k not in uniq:
                    uniq[k] = len(ents)
                    ents.append(self.entity(axis, v))
            feats = self.encoders_[axis].transform(ents, self.embedder_)
            blocks.append(feats[[uniq[k] for k in keys]])
        blocks.append(roofline_features(self.task_entities(tasks_df)))
        return np.hstack(blocks)

    def transform_entities(self, rows: Sequence[Mapping[str, Entity]]) -> np.ndarray:
        """Task features for tasks given as entities (free text, unseen values...)."""
        check_is_fitted(self, "encoders_")
        blocks = []
        for axis in self.axes_:
            try:
                ents = [r[axis] for r in rows]
            except KeyError:
                raise ValueError(f"a task needs a {axis} entity") from None
            blocks.append(self.encoders_[axis].transform(ents, self.embedder_))
        blocks.append(roofline_features(rows))
        return np.hstack(blocks)

    def transform_methods(self, methods: Sequence[str]) -> np.ndarray:
        """Method features [n_methods, e]; unknown names are described by their text."""
        check_is_fitted(self, "method_encoder_")
        ents = [self.entity("method", m) for m in methods]
        return self.method_encoder_.transform(ents, self.embedder_)

    def feature_names(self) -> list[str]:
        """Names of the task feature columns, in order."""
        check_is_fitted(self, "encoders_")
        return [n for a in self.axes_ for n in self.encoders_[a].feature_names()] + list(
            ROOFLINE_FEATURES)

    def axis_cols(self, axis: str) -> tuple[int, ...]:
        """Indices of one axis's task feature columns (e.g. the hardware's)."""
        return tuple(i for i, n in enumerate(self.feature_names())
                     if n.startswith((f"{axis}:", f"{axis}[")))

    def roofline_cols(self) -> tuple[int, int]:
        """Indices of the roofline's two task feature columns (log seconds, known)."""
        names = self.feature_names()
        return names.index(ROOFLINE_FEATURES[0]), names.index(ROOFLINE_FEATURES[1])

    def method_feature_names(self) -> list[str]:
        """Names of the method feature columns, in order."""
        check_is_fitted(self, "method_encoder_")
        return self.method_encoder_.feature_names()
