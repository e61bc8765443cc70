"""Scoring a trained model on tasks it was not trained on (e.g. the newest cells of a farm)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from metainf.selector.artifact import TrainedModel
from metainf.selector.descriptions import TableDescriber
from metainf.selector.evaluation.metrics import summarise, task_outcomes
from metainf.selector.table import PerfTable

SCORES = ("regret", "level_mdape", "accuracy")
"""The figures :func:`score_model` reports (DESIGN.md's metrics of a selector)."""


def predict_table(model: TrainedModel, table: PerfTable) -> np.ndarray:
    """A trained model's predicted cost of every (task, method) of a table [n, m].

    The tasks are described from the table's own meta (a model trained before a
    workload existed describes it as Select would, from its spec and statistics); a
    method the model was never trained on gets NaN (ranked last, never selected while a
    known candidate remains).
    """
    featurizer = copy.copy(model.featurizer)
    featurizer.describer_ = TableDescriber(featurizer.mapping_, table.meta)
    featurizer._entities = {}
    X = featurizer.transform_tasks(table.tasks)
    known = model.predict_cost(X)
    pred = np.full((table.n_tasks, len(table.methods)), np.nan)
    position = {m: j for j, m in enumerate(model.methods)}
    for j, method in enumerate(table.methods):
        if method in position:
            pred[:, j] = known[:, position[method]]
    return pred


def score_model(model: TrainedModel, table: PerfTable) -> dict[str, Any]:
    """Regret, level error (MdAPE of the chosen method's predicted cost) and strict accuracy
    of a model on a table's tasks, with ``n_tasks`` scored (tasks with two or more measured
    methods; the rest have nothing to choose). NaN figures when none is scored."""
    outcomes = task_outcomes(table.cost, predict_table(model, table), table.methods,
                             cobest=table.cobest, level=True)
    summary = summarise(outcomes)
    return {"n_tasks": int(summary["n_tasks"]),
            **{k: float(summary[k]) for k in SCORES}}
