"""One decoder block in PyTorch: its shape from a catalog config, and a block timing."""

from __future__ import annotations

import pytest

from metainf.blocks import BlockShape, time_block, torch_block
from metainf.models import catalog_entry
from metainf.placement.shapes import load_shape

pytest.importorskip("torch")


@pytest.mark.parametrize("model", ["llama-3.1-70b", "bloom-176b", "llama-tiny", "phi-2"])
def test_block_shape_counts_what_placement_counts(model):
    shape = BlockShape.from_config(catalog_entry(model))
    placed = load_shape(model)
    assert (shape.d_model, shape.n_kv_heads, shape.gated_mlp) == (
        placed.d_model, placed.n_kv_heads, placed.gated_mlp)
    assert shape.parameters == placed.params_per_block


@pytest.mark.parametrize("model", ["llama-tiny", "phi-tiny"])
def test_the_torch_block_holds_the_shapes_parameters(model):
    shape = BlockShape.from_config(catalog_entry(model))
    block = torch_block(shape)
    weights = sum(p.numel() for name, p in block.named_parameters() if not name.startswith("n"))
    assert weights == shape.parameters


def test_a_block_timing_gives_positive_decode_and_prefill_times():
    timing = time_block(BlockShape.from_config(catalog_entry("llama-tiny")), l_in=32,
                        repeats=3)
    assert 0 < timing.tau_s < 1 and 0 < timing.tau_prefill_s < 5
    assert (timing.l_in, timing.device, timing.dtype) == (32, "cpu", "float32")
    assert timing.torch_version
