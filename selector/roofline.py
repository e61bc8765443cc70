"""A roofline of a task: the least time its workload can take on its hardware.

Prefill is bound by compute (2 x active parameters FLOPs per input token at the
hardware's 16-bit peak), decode by memory bandwidth (every decode step of a batch reads
the weights once). MetaInf predicts a task's level as a learned efficiency relative to
this estimate, so hardware faster than any it measured is predicted faster. Where an
input is missing (a table without token counts, hardware without peak or bandwidth) the
roofline is unknown and the level is learned alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from metainf.selector.descriptions import Entity

FEATURES = ("log_roofline_s", "has_roofline")
"""The task feature columns the featurizer appends: log seconds (0 when unknown) and
whether it is known."""

_NEEDS = {"workload": ("num_prompts", "input_len_mean", "output_len_mean", "batch_size"),
          "model": ("log10_active_parameters", "weights_gb")}


def roofline_seconds(entities: Mapping[str, Entity]) -> float:
    """The roofline time of one task (its workload, model and hardware); NaN if unknown."""
    try:
        w = entities["workload"].facts
        m = entities["model"].facts
        h = entities["hardware"].facts
    except KeyError:
        return math.nan
    if any(k not in w for k in _NEEDS["workload"]) or any(k not in m for k in _NEEDS["model"]):
        return math.nan
    devices = float(h.get("device_count", 1.0) or 1.0)
    peak = float(h.get("bf16_tflops") or h.get("fp16_tflops") or 0.0) * 1e12 * devices
    bandwidth = float(h.get("bandwidth_tbs") or 0.0) * 1e12 * devices
    if peak <= 0 or bandwidth <= 0:
        return math.nan
    prompts, batch = float(w["num_prompts"]), max(float(w["batch_size"]), 1.0)
    prefill = 2.0 * 10 ** float(m["log10_active_parameters"]) * prompts * float(
        w["input_len_mean"]) / peak
    decode = math.ceil(prompts / batch) * float(w["output_len_mean"]) * float(
        m["weights_gb"]) * 1e9 / bandwidth
    total = prefill + decode
    return total if total > 0 else math.nan


def roofline_features(rows) -> np.ndarray:
    """The :data:`FEATURES` columns [n, 2] of tasks given as {axis: Entity} rows."""
    out = np.zeros((len(rows), 2))
    for i, row in enumerate(rows):
        t = roofline_seconds(row)
        if math.isfinite(t):
            out[i] = (math.log(t), 1.0)
    return out
