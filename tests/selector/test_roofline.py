"""The level follows the hardware: runtime relative to a roofline, so faster is faster."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from synthetic_tables import shared_embedder

from metainf.selector.descriptions import Entity
from metainf.selector.query import HardwareOption, SelectQuery
from metainf.selector.roofline import roofline_seconds
from metainf.selector.selection import select
from metainf.selector.table import PerfTable
from metainf.selector.training import train

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference-p" / "p.parquet"


def entity(axis: str, **facts) -> Entity:
    return Entity(axis=axis, key=axis, label=axis, facts=facts)


def test_roofline_by_hand():
    w = entity("workload", num_prompts=8, input_len_mean=100, output_len_mean=10,
               batch_size=4)
    m = entity("model", log10_active_parameters=9.0, weights_gb=2.0)
    h = entity("hardware", bf16_tflops=100.0, bandwidth_tbs=1.0)
    prefill = 2 * 1e9 * 8 * 100 / 100e12
    decode = 2 * 10 * 2e9 / 1e12  # 2 batches x 10 steps, each reads 2 GB at 1 TB/s
    assert roofline_seconds({"workload": w, "model": m, "hardware": h}) == pytest.approx(
        prefill + decode)
    two = entity("hardware", bf16_tflops=100.0, bandwidth_tbs=1.0, device_count=2.0)
    assert roofline_seconds({"workload": w, "model": m, "hardware": two}) == pytest.approx(
        (prefill + decode) / 2)
    assert math.isnan(roofline_seconds({"workload": w, "model": m,
                                        "hardware": entity("hardware", bf16_tflops=1.0)}))
    assert math.isnan(roofline_seconds({"workload": entity("workload"), "model": m,
                                        "hardware": h}))


def test_a_gpu_never_measured_is_predicted_faster_the_faster_it_is():
    frame = pd.read_parquet(REFERENCE)
    meta = json.loads(REFERENCE.with_name(REFERENCE.name + ".meta.json").read_text(
        encoding="utf-8"))
    for h in meta["hardware"].values():  # profiles as today's workers report them
        h["profile"].update(cpu_clock_ghz=2.8, memory_bandwidth_gbs=24.0)
    model = train(PerfTable.from_frame(frame, meta=meta), None, embedder=shared_embedder())
    assert model.info["roofline_tasks"] == model.info["n_tasks"]
    workload = {"dataset": "synthetic-shared-prefix", "num_prompts": 32, "batch_size": 4,
                "max_output_tokens": 16}

    def predicted(option: HardwareOption) -> float:
        answer = select(model, SelectQuery(model="llama-tiny", hardware=(option,),
                                           workload=workload, methods=("cb",)))
        return answer.candidates[0].predicted

    cpu = predicted(HardwareOption(name=sorted(model.known["hardware"])[0]))
    h100 = predicted(HardwareOption(text="NVIDIA H100 80GB"))
    h200 = predicted(HardwareOption(text="NVIDIA H200 141GB HBM3e, 4.8 TB/s"))
    assert h200 < h100 < cpu


def test_mapped_token_columns_give_an_external_table_its_roofline():
    from metainf.selector.descriptions import TableDescriber
    from metainf.selector.table import TableError, TableMapping

    mapping = TableMapping(task_cols=("model", "gpu", "in", "out", "bs"), method_col="m",
                           metric_col="t", minimize=True, hardware_col="gpu", model_col="model",
                           input_tokens_col="in", output_tokens_col="out", batch_col="bs")
    mapping.validate()
    describer = TableDescriber(mapping, {})
    row = {"model": "llama-3.1-8b", "gpu": "H100 80GB", "in": 512, "out": 128, "bs": 8}
    entities = {axis: describer.entity(axis, describer.values(axis, row))
                for axis in describer.axes()}
    facts = entities["workload"].facts
    assert (facts["input_len_mean"], facts["output_len_mean"], facts["batch_size"],
            facts["num_prompts"]) == (512, 128, 8, 8)
    assert math.isfinite(roofline_seconds(entities))
    unmapped = TableDescriber(TableMapping(task_cols=mapping.task_cols, method_col="m",
                                           metric_col="t", minimize=True, hardware_col="gpu",
                                           model_col="model"), {})
    plain = {axis: unmapped.entity(axis, unmapped.values(axis, row)) for axis in unmapped.axes()}
    assert math.isnan(roofline_seconds(plain))
    with pytest.raises(TableError, match="--batch-col"):
        TableMapping(task_cols=("model", "gpu", "in"), method_col="m", metric_col="t",
                     minimize=True, hardware_col="gpu", model_col="model",
                     batch_col="gpu").validate()
