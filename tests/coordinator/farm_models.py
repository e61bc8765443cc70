"""Farm-shaped P tables on the farm's own hardware labels, and MetaInf trained on them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "selector"))

from synthetic_tables import FARM_MODELS, farm_workloads, shared_embedder

from metainf.hardware import hardware_class
from metainf.selector.table import PerfTable
from metainf.selector.training import train

METHODS = ("none", "cb", "pc", "cb+pc")
CPU_PROFILE = {"kind": "cpu", "accelerator": "", "accelerator_count": 0,
               "accelerator_memory_gb": 0, "cpu_model": "AMD EPYC 7B13", "cpu_cores": 2,
               "ram_gb": 8.0, "isa_flags": ["avx2", "avx512f"]}
GPU_PROFILE = {"kind": "gpu", "accelerator": "NVIDIA L4", "accelerator_count": 1,
               "accelerator_memory_gb": 22.5, "cpu_model": "Intel Xeon", "cpu_cores": 8,
               "ram_gb": 32.0, "isa_flags": ["avx2"]}


def label_of(profile: dict) -> str:
    """The hardware-class label the coordinator gives a worker with this profile."""
    return hardware_class(profile)[1]


def farm_frame(profiles: dict[str, dict], factors: dict[str, float], seed: int = 0,
               batch_sizes=(4, 8), noise: float = 0.03) -> tuple[pd.DataFrame, dict]:
    """P on the given hardware (label -> profile): runtime = speed x method factor x
    (8 / batch) x noise, for both farm models and workloads; and its meta."""
    rng = np.random.default_rng(seed)
    workloads = farm_workloads()
    rows = []
    for model in FARM_MODELS:
        for hw, profile in profiles.items():
            speed = 1.0 if profile["kind"] == "cpu" else 0.1
            for label, w in workloads.items():
                for bs in batch_sizes:
                    for method in METHODS:
                        for rep in range(2):
                            rows.append({"campaign_id": "c1", "model": model, "method": method,
                                         "hardware": hw, "workload": label,
                                         "dataset": w["spec"]["dataset"], "batch_size": bs,
                                         "repetition": rep, "status": "done",
                                         "runtime_s": speed * factors[method] * (8 / bs) * 3
                                         * rng.uniform(1 - noise, 1 + noise)})
    meta = {"campaign_id": "c1", "workloads": workloads,
            "hardware": {hw: {"profile": p, "price_per_hour": 0.5} for hw, p in profiles.items()},
            "models": {m: {"summary": s} for m, s in FARM_MODELS.items()},
            "methods": {m: {"name": m, "flags": [] if m == "none" else m.split("+"),
                            "engine_args": {}} for m in METHODS}}
    return pd.DataFrame(rows), meta


def train_farm(frame: pd.DataFrame, meta: dict, model_dir: Path, **options):
    """MetaInf trained on a farm frame into model_dir (small and quick)."""
    options = {"svd_k": 4, "n_estimators": 60, **options}
    return train(PerfTable.from_frame(frame, meta=meta), model_dir, style="basic",
                 embedder=shared_embedder(), **options)
