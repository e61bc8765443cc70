"""PerfTable: pivoting long tables, medians, directions, mappings and their errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_tables import EXTERNAL_MAPPING, external_frame, farm_frame_and_meta

from metainf.selector.table import FARM_MAPPING, PerfTable, TableError, TableMapping


def test_from_frame_takes_median_of_repeats_and_keeps_done_rows():
    df = pd.DataFrame({
        "model": ["m"] * 5, "hardware": ["h"] * 5, "workload": ["w"] * 5,
        "batch_size": [8] * 5, "method": ["pc", "pc", "pc", "none", "none"],
        "runtime_s": [1.0, 3.0, 2.0, 5.0, 0.1], "status": ["done"] * 4 + ["failed"],
    })
    t = PerfTable.from_frame(df, FARM_MAPPING)
    assert t.methods == ["none", "pc"]  # paper order
    assert t.value.shape == (1, 2)
    assert t.value[0, 1] == pytest.approx(2.0)
    assert t.value[0, 0] == pytest.approx(5.0)  # the failed 0.1 s row is not a measurement
    np.testing.assert_allclose(t.cost, t.value)


def test_unmeasured_pairs_are_nan_and_bad_metrics_dropped():
    df = pd.DataFrame({"task": ["a", "a", "b", "b"], "m": ["x", "y", "x", "y"],
                       "v": [1.0, -2.0, np.inf, 4.0]})
    t = PerfTable.from_frame(df, TableMapping(("task",), "m", "v", minimize=True))
    assert list(t.tasks["task"]) == ["a", "b"]
    assert np.isnan(t.value[0, 1]) and np.isnan(t.value[1, 0])
    assert t.value[1, 1] == 4.0


def test_maximize_metric_costs_its_inverse():
    df = pd.DataFrame({"task": ["a", "a"], "m": ["x", "y"], "tput": [10.0, 40.0]})
    t = PerfTable.from_frame(df, TableMapping(("task",), "m", "tput", minimize=False))
    np.testing.assert_allclose(t.cost[0], [0.1, 0.025])
    assert np.nanargmin(t.cost[0]) == 1


def test_missing_columns_are_named_with_the_mapping_flags():
    with pytest.raises(TableError, match=r"\['Latency'\].*--task-cols"):
        PerfTable.from_frame(external_frame().drop(columns=["Latency"]), EXTERNAL_MAPPING)


def test_hardware_and_model_columns_join_the_task_columns():
    mapping = TableMapping(("Input Output Length", "Batch Size"), "Framework", "Latency", True,
                           hardware_col="GPU", model_col="Model")
    t = PerfTable.from_frame(external_frame(), mapping)
    assert set(t.mapping.task_cols) == {"Model", "GPU", "Input Output Length", "Batch Size"}
    assert t.mapping.workload_cols == ("Input Output Length", "Batch Size")


def test_load_csv_with_meta_and_subset(tmp_path):
    df, meta = farm_frame_and_meta()
    path = tmp_path / "p.csv"
    df.to_csv(path, index=False)
    (tmp_path / "p.csv.meta.json").write_text(json.dumps(meta))
    t = PerfTable.load(path)
    assert t.meta["campaign_id"] == "c1"
    assert t.mapping == FARM_MAPPING
    assert t.n_tasks == 2 * 2 * 2 * 2  # model x hardware x workload x batch size
    sub = t.subset([0, 3])
    assert sub.n_tasks == 2 and list(sub.tasks.index) == [0, 1]
    np.testing.assert_array_equal(sub.value, t.value[[0, 3]])


def test_load_external_table_without_mapping_suggests_flags(tmp_path):
    path = tmp_path / "bench.csv"
    external_frame().to_csv(path, index=False)
    with pytest.raises(TableError, match="mapping flags"):
        PerfTable.load(path)
    t = PerfTable.load(path, EXTERNAL_MAPPING)
    assert t.methods == ["tgi", "trtllm", "vllm"]
