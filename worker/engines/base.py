"""The engine Protocol every inference engine plugin implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from metainf.models import ModelRef
from metainf.worker.metrics import RunTrace
from metainf.workloads import Request


@dataclass(frozen=True)
class EngineOptions:
    """Where and how an engine starts on this worker (not part of what is measured)."""

    cpus: tuple[int, ...] = ()
    """Cores the engine is pinned to (empty: all the worker may use)."""
    memory_share: float = 0.3
    """Share of memory for the KV cache (vLLM gpu_memory_utilization; RAM share on CPU)."""
    device: str = "cpu"
    """"cpu" or "gpu"."""
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """An inference engine kept warm across cells: start once, run many, shut down."""

    name: str

    def version(self) -> str:
        """Engine version string, e.g. '0.32.0+cpu'."""
        ...

    def start(self, model: ModelRef, engine_config: dict[str, Any],
              options: EngineOptions) -> dict[str, Any]:
        """Start for a model and engine configuration; return the options it started with."""
        ...

    def run(self, requests: list[Request], batch_size: int,
            continuous_batching: bool) -> RunTrace:
        """Run a workload: B in flight refilled at once (cb) or static groups of B."""
        ...

    def reset_cache(self) -> None:
        """Drop cached state (the prefix cache) so a run never profits from the last one."""
        ...

    def shutdown(self) -> None:
        """Stop the engine and free its memory."""
        ...
