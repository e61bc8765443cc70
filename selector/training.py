"""Training MetaInf: fit the featurizer and the meta-learner on a table, into a TrainedModel."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metainf.selector.artifact import FORMAT_VERSION, NEAREST_STYLE, TrainedModel
from metainf.selector.descriptions import Entity, format_value
from metainf.selector.embeddings import Embedder
from metainf.selector.features import TaskFeaturizer
from metainf.selector.meta_learner import DEFAULT_PARAM_GRID, MetaInfSelector
from metainf.selector.table import PerfTable

log = logging.getLogger(__name__)

XGB_PARAMS = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
              "min_child_weight", "n_jobs")
"""XGBoost hyper-parameters `train` accepts as keywords (a given one is not searched)."""

SELECTOR_PARAMS = ("relative", "search", "param_grid", "cv", "cache", "cache_dir")
"""Further MetaInfSelector options `train` accepts as keywords."""


def data_hash(table: PerfTable) -> str:
    """A hash of a table's tasks, methods, values, mapping and meta."""
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(table.tasks.astype(str), index=False).values.tobytes())
    h.update(json.dumps(table.methods).encode())
    h.update(np.nan_to_num(table.value, nan=-1.0).astype(np.float64).tobytes())
    h.update(json.dumps(table.mapping.to_dict(), sort_keys=True).encode())
    h.update(json.dumps(table.meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


UNSEEN = ("hardware", "model", "task")
"""What a trained model is asked about that it never measured: its inner validation holds
out whole hardware, whole models, or (``task``) only tasks."""


def inner_groups(table: PerfTable, unseen: str):
    """The group label of each task that the inner folds hold out for ``unseen`` (None:
    folds of tasks, also when the table has no such column)."""
    if unseen not in UNSEEN:
        raise ValueError(f"unseen: use one of {', '.join(UNSEEN)} (got {unseen!r})")
    col = {"hardware": table.mapping.hardware_col, "model": table.mapping.model_col}.get(unseen)
    return table.tasks[col].astype(str).to_numpy() if col else None


def train(table: PerfTable, out_dir: str | Path | None, style: str = "rich", svd_k: int = 16,
          embedder_path: str | Path | None = None, seed: int = 0,
          embedder: Embedder | None = None, unseen: str = "hardware",
          **options: Any) -> TrainedModel:
    """Fit the featurizer and MetaInf on every task of a table; save it when out_dir is set.

    ``unseen`` is the question the model will be asked (:data:`UNSEEN`; by default
    hardware never measured), which its inner validation mirrors. ``options`` are XGBoost
    hyper-parameters (:data:`XGB_PARAMS`; one given here is used as given, not searched)
    and MetaInf options (:data:`SELECTOR_PARAMS`).
    """
    groups = inner_groups(table, unseen)
    unknown = sorted(set(options) - set(XGB_PARAMS) - set(SELECTOR_PARAMS))
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; known: "
                        f"{', '.join(XGB_PARAMS + SELECTOR_PARAMS)}")
    if table.n_tasks == 0:
        raise ValueError("the table has no task to train on")
    t0 = time.perf_counter()
    embedder = embedder or Embedder(embedder_path)
    xgb = {k: v for k, v in options.items() if k in XGB_PARAMS}
    params = dict(options)
    if "param_grid" not in params and any(k in DEFAULT_PARAM_GRID for k in xgb):
        params["param_grid"] = {k: list(v) for k, v in DEFAULT_PARAM_GRID.items()
                                if k not in xgb}
    config = {"style": style, "svd_k": int(svd_k), "seed": int(seed), "unseen": unseen,
              "embedder_path": str(embedder_path) if embedder_path else None,
              "embedder_id": embedder.model_id,
              "xgb": {k: xgb[k] for k in sorted(xgb)}}
    selector_config = {k: params[k] for k in sorted(params)
                       if k in SELECTOR_PARAMS and k not in ("cache", "cache_dir")}
    if selector_config:
        config["selector"] = selector_config
    version = hashlib.sha256(  # the layout is part of what a version names
        (data_hash(table) + json.dumps({**config, "format": FORMAT_VERSION}, sort_keys=True,
                                       default=str)).encode()
    ).hexdigest()[:12]
    featurizer = TaskFeaturizer(style=style, svd_k=svd_k, embedder=embedder, seed=seed)
    featurizer.fit(table)
    X = featurizer.transform_tasks(table.tasks)
    M = featurizer.transform_methods(table.methods)
    selector = MetaInfSelector(seed=seed, roofline_cols=featurizer.roofline_cols(),
                               local_cols=featurizer.axis_cols("hardware") or None,
                               **params).fit(X, table.cost, M, groups=groups).for_serving()
    known_roofline = int((X[:, featurizer.roofline_cols()[1]] > 0.5).sum())
    if known_roofline < table.n_tasks:
        log.info("roofline known for %d of %d tasks; the level of the rest is learned alone",
                 known_roofline, table.n_tasks)

    describer = featurizer.describer_
    known: dict[str, dict[str, Entity]] = {}
    for axis in featurizer.axes_:
        values = featurizer._axis_values(axis, table.tasks)
        known[axis] = {}
        for v in values:
            e = featurizer.entity(axis, v)
            known[axis].setdefault(e.key, e)
    known["method"] = {m: featurizer.entity("method", m) for m in table.methods}

    measured = np.isfinite(table.cost)
    methods_by_hardware: dict[str, list[str]] = {}
    prices: dict[str, float | None] = {}
    hw_col = table.mapping.hardware_col
    if hw_col:
        labels = table.tasks[hw_col].map(format_value).to_numpy()
        for label in dict.fromkeys(labels):
            rows = labels == label
            methods_by_hardware[label] = [m for j, m in enumerate(table.methods)
                                          if measured[rows, j].any()]
            prices[label] = describer.price(label)
    hardware_names = list(methods_by_hardware)
    if hardware_names:
        texts = [known["hardware"][h].text(NEAREST_STYLE) for h in hardware_names]
        hw_emb = embedder.encode(texts)
    else:
        hw_emb = np.zeros((0, 0), dtype=np.float32)
    info = {"created_at": time.time(), "n_tasks": table.n_tasks,
            "n_pairs": int(measured.sum()), "data_hash": data_hash(table)[:16],
            "train_seconds": round(time.perf_counter() - t0, 3),
            "best_params": selector.best_params_,
            "level_params": selector.level_params_,
            "inner_folds": selector.inner_folds_,
            "imputed_cells": selector.imputed_,
            "roofline_tasks": known_roofline,
            "departure": selector.departure_,
            "task_features": featurizer.feature_names(),
            "method_features": featurizer.method_feature_names(),
            "campaign_id": table.meta.get("campaign_id")}
    model = TrainedModel(
        version=version, featurizer=featurizer, selector=selector, mapping=table.mapping,
        methods=list(table.methods), method_features=M,
        methods_by_hardware=methods_by_hardware, prices=prices, known=known,
        hardware_names=hardware_names, hardware_embeddings=np.asarray(hw_emb),
        config=config, info=info,
    )
    if out_dir is not None:
        model.save(out_dir)
    log.info("trained MetaInf %s on %d tasks x %d methods in %.1f s", version, table.n_tasks,
             len(table.methods), info["train_seconds"])
    return model
