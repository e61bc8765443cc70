"""TaskFeaturizer: SVD and scalers fitted on training tasks only; styles; unseen entities."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_tables import external_table, farm_frame_and_meta, shared_embedder

from metainf.selector.descriptions import hardware_entity_from_text
from metainf.selector.features import TaskFeaturizer, merged_levels, onto_levels
from metainf.selector.table import FARM_MAPPING, PerfTable


@pytest.fixture(scope="module")
def table():
    return external_table()


def test_svd_is_fitted_on_training_tasks_only(table):
    train = np.flatnonzero(table.tasks["GPU"] != "H100 SXM")
    f = TaskFeaturizer(style="rich", svd_k=16, embedder=shared_embedder()).fit(table, train)
    hw = f.encoders_["hardware"]
    assert hw.svd_.n_components == 2  # 3 training GPUs cap k at 2
    before = hw.svd_.components_.copy()
    mean_before = hw.fact_mean_.copy()
    X_all = f.transform_tasks(table.tasks)  # includes the held-out H100
    np.testing.assert_array_equal(hw.svd_.components_, before)
    np.testing.assert_array_equal(hw.fact_mean_, mean_before)
    # Fitting on the training subset table gives the same features: nothing leaked.
    g = TaskFeaturizer(style="rich", svd_k=16, embedder=shared_embedder()).fit(
        table.subset(train))
    np.testing.assert_allclose(g.transform_tasks(table.tasks), X_all, atol=1e-6)
    held = table.tasks["GPU"] == "H100 SXM"
    assert np.isfinite(X_all[held]).all()
    assert not np.allclose(X_all[held], X_all[~held][: held.sum()])


@pytest.mark.parametrize("style", ["basic", "rich", "cot"])
def test_text_styles_give_finite_features_of_fixed_width(table, style):
    f = TaskFeaturizer(style=style, svd_k=4, embedder=shared_embedder()).fit(table)
    X = f.transform_tasks(table.tasks)
    M = f.transform_methods(table.methods)
    assert X.shape == (table.n_tasks, len(f.feature_names()))
    assert M.shape[0] == 3 and np.isfinite(X).all() and np.isfinite(M).all()
    assert all(f.encoders_[a].svd_.n_components <= 4 for a in f.axes_)


def test_onehot_encodes_identities_and_unseen_as_zeros(table):
    train = np.flatnonzero(table.tasks["GPU"] != "H100 SXM")
    f = TaskFeaturizer(style="onehot").fit(table, train)
    assert f.embedder_ is None
    names = f.feature_names()
    assert "hardware[hardware=L4]" in names and "hardware[hardware=H100 SXM]" not in names
    X = f.transform_tasks(table.tasks)
    hw_cols = [i for i, n in enumerate(names) if n.startswith("hardware[")]
    held = (table.tasks["GPU"] == "H100 SXM").to_numpy()
    assert (X[held][:, hw_cols] == 0).all()
    assert (X[~held][:, hw_cols].sum(axis=1) == 1).all()
    np.testing.assert_array_equal(f.transform_methods(["vllm", "new"]),
                                  [[0, 0, 1], [0, 0, 0]])


def test_free_text_entity_is_featurized_like_a_table_value(table):
    f = TaskFeaturizer(style="rich", svd_k=8, embedder=shared_embedder()).fit(table)
    row = f.task_entities(table.tasks.iloc[:1])[0]
    same = f.transform_entities([row])
    np.testing.assert_allclose(same, f.transform_tasks(table.tasks.iloc[:1]))
    unseen = f.transform_entities([{**row, "hardware": hardware_entity_from_text(
        "NVIDIA H200 141GB HBM3e")}])
    assert unseen.shape == same.shape and not np.allclose(unseen, same)


def test_farm_table_features_from_meta():
    df, meta = farm_frame_and_meta()
    t = PerfTable.from_frame(df, FARM_MAPPING, meta)
    f = TaskFeaturizer(style="cot", svd_k=16, embedder=shared_embedder()).fit(t)
    names = f.feature_names()
    assert "workload:shared_prefix_ratio" in names and "hardware:is_cpu" in names
    assert "model:hidden_size" in names
    X = f.transform_tasks(t.tasks)
    assert np.isfinite(X).all() and X.shape[0] == t.n_tasks


def test_components_that_differ_by_rounding_only_are_one_value():
    levels, merged = merged_levels(np.array([0.93632638, 0.5, 0.93632632, 0.5]))
    assert merged[0] == merged[2] and merged[1] == merged[3] == 0.5
    assert levels.tolist() == sorted({merged[0], 0.5})
    # a new value within the tolerance takes the level, one beyond it keeps its own
    assert onto_levels(np.array([0.936326, 0.9288, 0.1]), levels).tolist() == [
        merged[0], 0.9288, 0.1]


def test_two_training_entities_project_onto_one_value_and_split_on_facts_only(table):
    # with two training GPUs the first component is their bisector: equal in exact
    # arithmetic, so it must be equal here too, whatever the float rounding
    train = np.flatnonzero(table.tasks["GPU"].isin(["A100-80GB", "H100 SXM"]))
    f = TaskFeaturizer(style="rich", svd_k=16, embedder=shared_embedder()).fit(table, train)
    hw = f.encoders_["hardware"]
    assert hw.svd_.n_components == 1
    X = f.transform_tasks(table.tasks.iloc[train])
    svd0 = X[:, f.axis_cols("hardware")[0]]
    assert np.unique(svd0).size == 1
