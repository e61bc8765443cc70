"""Small synthetic performance tables with a known winner per hardware, and a shared embedder."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile

import numpy as np
import pandas as pd

from metainf.selector.embeddings import Embedder
from metainf.selector.table import PerfTable, TableMapping

HARDWARE = {"T4": (16, 0.32), "L4": (24, 0.30), "A100-80GB": (80, 2.0), "H100 SXM": (80, 3.35)}
"""Known hardware of the external table: memory GB, bandwidth TB/s."""

MODELS = {"Llama-2-7b": 7, "Mistral-7B": 7, "Llama-2-13b": 13}
METHODS = ("vllm", "tgi", "trtllm")

EXTERNAL_MAPPING = TableMapping(
    task_cols=("Model", "GPU", "Input Output Length", "Batch Size"),
    method_col="Framework", metric_col="Latency", minimize=True,
    hardware_col="GPU", model_col="Model",
)


def winner(gpu: str) -> str:
    """The method that wins on a GPU of the external table: trtllm on big GPUs, vllm else."""
    return "trtllm" if HARDWARE[gpu][0] >= 64 else "vllm"


def external_frame(seed: int = 0, repeats: int = 2, lengths=(128, 512, 2048),
                   batches=(1, 16, 64), models=None) -> pd.DataFrame:
    """A long latency table (seconds): model x GPU x length x batch x framework, repeated."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, params in (models or MODELS).items():
        for gpu, (mem, bw) in HARDWARE.items():
            big = mem >= 64
            factor = {"vllm": 1.3 if big else 1.0, "tgi": 1.5, "trtllm": 0.8 if big else 1.4}
            for length in lengths:
                for batch in batches:
                    base = params / bw * length / 100 * (1 + batch / 16)
                    for method in METHODS:
                        for _ in range(repeats):
                            rows.append({"Model": model, "GPU": gpu,
                                         "Input Output Length": length, "Batch Size": batch,
                                         "Framework": method,
                                         "Latency": base * factor[method]
                                         * rng.uniform(0.95, 1.05)})
    return pd.DataFrame(rows)


def external_table(seed: int = 0) -> PerfTable:
    """The external table as a PerfTable."""
    return PerfTable.from_frame(external_frame(seed), EXTERNAL_MAPPING)


@functools.lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder (packaged MiniLM) for the whole test session, caching in a temp dir
    that goes when the session ends (it holds an OpenVINO copy of the model, ~170 MB)."""
    cache = tempfile.mkdtemp(prefix="metainf-emb-test-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    return Embedder(cache_dir=cache)


FARM_MODELS = {
    "llama-tiny": {"family": "llama", "parameters": 6.0e6, "active_parameters": 6.0e6,
                   "num_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                   "num_kv_heads": 2, "head_dim": 64, "intermediate_size": 512,
                   "num_experts": 0, "experts_per_token": 0, "max_context": 2048,
                   "dtype": "bfloat16", "vocab_size": 32000},
    "qwen2-tiny": {"family": "qwen2", "parameters": 9.0e6, "active_parameters": 9.0e6,
                   "num_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                   "num_kv_heads": 4, "head_dim": 64, "intermediate_size": 704,
                   "num_experts": 0, "experts_per_token": 0, "max_context": 4096,
                   "dtype": "bfloat16", "vocab_size": 32000},
}

FARM_HARDWARE = {
    "cpu-amd-epyc-2c": {"profile": {"kind": "cpu", "accelerator": "", "accelerator_count": 0,
                                    "accelerator_memory_gb": 0, "cpu_model": "AMD EPYC 7B13",
                                    "cpu_cores": 2, "ram_gb": 8.0,
                                    "isa_flags": ["avx2", "avx512f"]},
                        "price_per_hour": 0.1},
    "gpu-nvidia-l4-1x": {"profile": {"kind": "gpu", "accelerator": "NVIDIA L4",
                                     "accelerator_count": 1, "accelerator_memory_gb": 22.5,
                                     "cpu_model": "Intel Xeon", "cpu_cores": 8,
                                     "ram_gb": 32.0, "isa_flags": ["avx2"]},
                         "price_per_hour": 0.8},
}


def farm_workloads() -> dict[str, dict]:
    """Two farm workloads (shared-prefix and ShareGPT-like) with real labels and statistics."""
    from metainf import workloads as wl

    out = {}
    for spec in (wl.WorkloadSpec(dataset="synthetic-shared-prefix", num_prompts=16,
                                 max_output_tokens=16),
                 wl.WorkloadSpec(dataset="synthetic-sharegpt", num_prompts=16,
                                 max_output_tokens=32)):
        stats = wl.workload_stats(spec, wl.build_requests(spec, 32000))
        out[wl.workload_label(spec)] = {"spec": spec.model_dump(exclude={"records"}),
                                        "stats": stats}
    return out


def farm_frame_and_meta(seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A farm-shaped P (long rows, status column) and its meta: pc wins on shared prefixes."""
    rng = np.random.default_rng(seed)
    workloads = farm_workloads()
    rows = []
    methods = ("none", "cb", "pc", "cb+pc")
    for model in FARM_MODELS:
        for hw, info in FARM_HARDWARE.items():
            speed = 1.0 if info["profile"]["kind"] == "cpu" else 0.1
            for label, w in workloads.items():
                shared = w["stats"]["shared_prefix_ratio"] > 0.3
                for bs in (4, 8):
                    for method in methods:
                        f = 1.0
                        if "pc" in method:
                            f *= 0.5 if shared else 1.15
                        if "cb" in method and not shared:
                            f *= 0.8
                        for rep in range(2):
                            rows.append({"campaign_id": "c1", "model": model, "method": method,
                                         "hardware": hw, "workload": label,
                                         "dataset": w["spec"]["dataset"], "batch_size": bs,
                                         "repetition": rep, "status": "done",
                                         "runtime_s": speed * f * (8 / bs) * 3
                                         * rng.uniform(0.97, 1.03)})
    rows.append({**rows[0], "status": "failed", "runtime_s": 0.0})
    meta = {"campaign_id": "c1", "workloads": workloads, "hardware": FARM_HARDWARE,
            "models": {m: {"summary": s} for m, s in FARM_MODELS.items()},
            "methods": {m: {"name": m, "flags": [] if m == "none" else m.split("+"),
                            "engine_args": {}} for m in methods}}
    return pd.DataFrame(rows), meta
