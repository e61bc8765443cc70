"""The vLLM engine as a worker starts it: vLLM's offline defaults, reported as resolved."""

from __future__ import annotations

import pytest

from metainf.methods import method_from_name
from metainf.models import resolve_model
from metainf.worker.engines.base import EngineOptions
from metainf.worker.engines.vllm import VllmEngine

pytestmark = [pytest.mark.integration, pytest.mark.engine]


def test_the_engine_starts_with_the_offline_defaults_and_reports_what_it_resolved():
    from vllm import EngineArgs
    from vllm.usage.usage_lib import UsageContext

    model = resolve_model("llama-tiny")
    method = method_from_name("none")  # leaves the token budget and sequences to vLLM
    # What vLLM's own `LLM(...)` (and `vllm bench throughput`) resolves for the same flags.
    offline = EngineArgs(model=str(model.path), load_format="dummy", skip_tokenizer_init=True,
                         max_model_len=2048, enforce_eager=True, **method.engine_config()
                         ).create_engine_config(UsageContext.LLM_CLASS).scheduler_config
    engine = VllmEngine()
    try:
        config = engine.start(model, method.engine_config(),
                              EngineOptions(cpus=(0,), memory_share=0.15, device="cpu"))
    finally:
        engine.shutdown()
    assert config["max_num_batched_tokens"] == offline.max_num_batched_tokens
    assert config["max_num_seqs"] == offline.max_num_seqs
    assert config["enable_prefix_caching"] is False and config["enable_chunked_prefill"] is False
    assert config["log_stats"] is False
    assert config["kv_cache_blocks"] > 0 and config["block_size"] > 0
    assert config["cpu_env"]["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert config["process_cores"]["VLLM::Worker"] == "0"
