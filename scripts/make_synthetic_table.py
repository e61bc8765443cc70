"""Write a synthetic external benchmark table with a planted method structure.

4 hardware x 6 models x 13 workloads x 2 batch sizes = 624 tasks, x 8 methods = 4,992
rows (one per task and method). Runtime follows a simple cost model, and each method's
effect depends on task facts that the labels describe, so a selector that reads them
can beat the single best method:

- cb (continuous batching) pays off with spread-out output lengths and large batches;
- pc (prefix caching) pays off with a long shared prefix, and costs a little elsewhere,
  more on small models (the paper's Phi-2 case);
- cp (chunked prefill) pays off with long prompts on low-memory GPUs, costs elsewhere.

With ``--wide``: 9 hardware (5 more, from other vendors too) x the same tasks x 4 methods
= 1,404 tasks, 5,616 rows, the shape of a multi-vendor table, for timing ``evaluate``
near 5,000 rows (the extra hardware's speeds are made up, like the rest).

Usage: python scripts/make_synthetic_table.py OUT.csv [--seed S] [--noise SIGMA] [--wide]
Evaluate: metainf evaluate --data OUT.csv --task-cols model,hardware,workload,batch_size
          --method-col method --metric-col runtime_s --minimize --hardware-col hardware
          --model-col model --protocol loho --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ("none", "cb", "pc", "cp", "cb+pc", "cb+cp", "pc+cp", "cb+pc+cp")

HARDWARE = {  # label: (relative speed, memory GB)
    "NVIDIA A100 80GB SXM": (1.0, 80),
    "NVIDIA L4 24GB": (0.35, 24),
    "NVIDIA H100 80GB SXM": (1.9, 80),
    "NVIDIA T4 16GB": (0.15, 16),
}

WIDE_HARDWARE = {**HARDWARE,
                 "NVIDIA A10G 24GB": (0.4, 24),
                 "NVIDIA L40S 48GB": (0.8, 48),
                 "AMD MI250 128GB": (0.9, 128),
                 "AMD MI300X 192GB": (2.0, 192),
                 "Intel Gaudi2 96GB": (1.1, 96)}

WIDE_METHODS = ("none", "cb", "pc", "cb+pc")

MODELS = {  # label: (billions of active parameters, small model?)
    "Llama-3.1-8B": (8.0, False),
    "Qwen2.5-7B": (7.6, False),
    "Phi-2 (2.7B)": (2.7, True),
    "Mistral-7B-v0.3": (7.2, False),
    "Mixtral-8x7B (MoE, 13B active)": (13.0, False),
    "Qwen2.5-1.5B": (1.5, True),
}

WORKLOADS = {  # label: (mean input tokens, mean output tokens, output spread 0..1, prefix share)
    "sharegpt chat, input ~256, output ~256 varied": (256, 256, 0.9, 0.0),
    "sharegpt chat, input ~512, output ~128 varied": (512, 128, 0.8, 0.05),
    "shared system prompt 512 + suffix 64, output 64 fixed": (576, 64, 0.0, 0.89),
    "shared system prompt 1024 + suffix 64, output 128 fixed": (1088, 128, 0.0, 0.94),
    "shared system prompt 2048 + suffix 128, output 32 fixed": (2176, 32, 0.0, 0.94),
    "reasoning, input ~128, output ~2048 varied": (128, 2048, 0.7, 0.0),
    "reasoning, input ~512, output ~1024 varied": (512, 1024, 0.6, 0.1),
    "long-document summarisation, input ~4096, output ~256": (4096, 256, 0.3, 0.0),
    "retrieval QA, input ~2048 with shared context, output ~128": (2048, 128, 0.4, 0.6),
    "code completion, input ~1024, output ~64 fixed": (1024, 64, 0.0, 0.2),
    "few-shot classification, shared 1536-token prompt, output 8": (1544, 8, 0.0, 0.97),
    "multi-turn chat, input ~1536 history, output ~192 varied": (1536, 192, 0.8, 0.5),
    "short prompts, input ~32, output ~32 fixed": (32, 32, 0.0, 0.0),
}

BATCH_SIZES = (8, 64)


def method_effect(method: str, hw: tuple, model: tuple, wl: tuple, batch: int) -> float:
    """Log-runtime change of a method on a task (negative = faster)."""
    _speed, mem = hw
    _params, small = model
    inp, out, spread, prefix = wl
    flags = set() if method == "none" else set(method.split("+"))
    effect = 0.0
    if "cb" in flags:
        effect += -0.45 * spread * np.sqrt(batch / 64) + 0.03
    if "pc" in flags:
        effect += -0.7 * prefix * min(inp / 1024, 2.0) + (0.12 if small else 0.04) * (1 - prefix)
    if "cp" in flags:
        long_prompt = min(inp / 2048, 2.0)
        effect += (-0.3 * long_prompt if mem < 32 else 0.05) + 0.03
    if {"cb", "cp"} <= flags:
        effect += -0.08 * spread * (out / 1024)
    if {"pc", "cp"} <= flags:
        effect += 0.03
    return effect


def make_table(seed: int = 0, noise: float = 0.04, wide: bool = False) -> pd.DataFrame:
    """The synthetic long table: one row per (model, hardware, workload, batch, method)."""
    rng = np.random.default_rng(seed)
    rows = []
    hardware, methods = (WIDE_HARDWARE, WIDE_METHODS) if wide else (HARDWARE, METHODS)
    for hw_name, hw in hardware.items():
        for model_name, model in MODELS.items():
            for wl_name, wl in WORKLOADS.items():
                for batch in BATCH_SIZES:
                    inp, out, _, _ = wl
                    base = 256 * (0.2 * inp + out) * model[0] / (hw[0] * 1e3 * np.sqrt(batch))
                    for method in methods:
                        log_rt = (np.log(base) + method_effect(method, hw, model, wl, batch)
                                  + rng.normal(0.0, noise))
                        rows.append({
                            "model": model_name, "hardware": hw_name, "workload": wl_name,
                            "batch_size": batch, "method": method,
                            "runtime_s": float(np.exp(log_rt)),
                            "throughput_tok_s": float(256 * out / np.exp(log_rt)),
                        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Write the table to the given CSV or Parquet path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.04, help="log-runtime noise sigma")
    parser.add_argument("--wide", action="store_true",
                        help="9 hardware x 4 methods (5,616 rows), for timing evaluate")
    args = parser.parse_args(argv)
    df = make_table(args.seed, args.noise, args.wide)
    if args.out.suffix == ".parquet":
        df.to_parquet(args.out, index=False)
    else:
        df.to_csv(args.out, index=False)
    print(f"{args.out}: {len(df)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
