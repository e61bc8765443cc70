"""A block-timing cell: time one transformer block of a catalog model on this worker.

The block (metainf.blocks: PyTorch, random weights, 16-bit) runs in a spawned child
process, so that a block too large for the machine, or a crash, fails the timing and
not the worker; a block whose weights plus a margin do not fit in the memory free now
is refused before it is built. The outcome is a dict of ReportBlockTimingRequest fields.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

DTYPE = "bfloat16"
"""The dtype blocks are timed in: 16-bit, what placement assumes blocks are stored in."""

MEMORY_MARGIN = 2.0
"""Memory the timing may use, as a multiple of the block's weights (activations, cache)."""


def device_of(profile: dict[str, Any]) -> str:
    """The torch device of a worker's profile: cuda on a GPU worker, else cpu."""
    return "cuda" if profile.get("kind") == "gpu" else "cpu"


def free_bytes(device: str) -> float:
    """Memory free now on the device (the first GPU, or the host's available RAM)."""
    if device == "cuda":
        import torch

        return float(torch.cuda.mem_get_info()[0])
    import psutil

    return float(psutil.virtual_memory().available)


def _child(conn: Any, model: str, l_in: int, repeats: int, device: str) -> None:
    """Child process: check memory, build and time the block, send the outcome."""
    try:
        from metainf.blocks import BlockShape, time_block
        from metainf.models import catalog_entry

        shape = BlockShape.from_config(catalog_entry(model))
        need = shape.parameters * 2 * MEMORY_MARGIN
        free = free_bytes(device)
        if need > free:
            conn.send({"status": "failed", "device": device, "dtype": DTYPE,
                       "error": f"one block of {model} needs about {need / 1e9:.1f} GB with "
                                f"its margin, {free / 1e9:.1f} GB free on {device}"})
            return
        timing = time_block(shape, l_in, repeats, device, DTYPE)
        conn.send({"status": "done", **timing.to_dict()})
    except Exception as exc:  # a failed timing is a result, never a crashed worker
        conn.send({"status": "failed", "device": device, "dtype": DTYPE,
                   "error": f"{type(exc).__name__}: {exc}"})


def run_block_timing(model: str, l_in: int, repeats: int, device: str,
                     timeout_s: float) -> dict[str, Any]:
    """Time one block of `model` in a child process; the ReportBlockTimingRequest fields."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, model, l_in, repeats, device), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout_s):
            outcome = parent.recv()
        else:
            outcome = {"status": "failed", "error": f"timed out after {timeout_s:.0f} s"}
    except EOFError:
        outcome = {"status": "failed",
                   "error": f"the timing process died (exit code {proc.exitcode}); out of "
                            "memory?"}
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
    out = {"status": outcome["status"], "error": outcome.get("error", ""),
           "device": outcome.get("device", device), "dtype": outcome.get("dtype", DTYPE),
           "torch_version": outcome.get("torch_version", "")}
    if outcome["status"] == "done":
        out.update(tau_s=outcome["tau_s"], tau_prefill_s=outcome["tau_prefill_s"])
    return out
