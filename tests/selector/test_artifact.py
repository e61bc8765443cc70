"""The trained artefact: versioned save/load round trip, LATEST, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_tables import external_table, shared_embedder

from metainf.selector.artifact import ModelNotFoundError, latest_version, load_model
from metainf.selector.training import train


@pytest.fixture(scope="module")
def table():
    return external_table()


def test_save_load_round_trip_gives_the_same_predictions(tmp_path, table):
    model = train(table, tmp_path, style="rich", svd_k=8, embedder=shared_embedder(),
                  n_estimators=60)
    assert (tmp_path / "LATEST").read_text(encoding="utf-8").strip() == model.version
    manifest = json.loads((tmp_path / model.version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["metric"] == "Latency" and manifest["minimize"] is True
    assert manifest["methods_by_hardware"]["T4"] == ["tgi", "trtllm", "vllm"]
    assert (tmp_path / model.version / "xgboost.ubj").exists()
    assert (tmp_path / model.version / "xgboost-ranker.ubj").exists()  # the ranking head
    assert manifest["info"]["best_params"] == model.selector.best_params_
    assert "n_estimators" not in model.selector.best_params_  # given, so not searched
    loaded = load_model(tmp_path)
    assert loaded.version == model.version
    X1 = model.featurizer.transform_tasks(table.tasks)
    X2 = loaded.featurizer.transform_tasks(table.tasks)
    np.testing.assert_allclose(X1, X2)
    np.testing.assert_allclose(loaded.predict_cost(X2), model.predict_cost(X1), rtol=1e-6)
    assert set(loaded.known["hardware"]) == {"T4", "L4", "A100-80GB", "H100 SXM"}
    assert loaded.prices["L4"] == pytest.approx(0.80)


def test_versions_depend_on_config_and_latest_moves(tmp_path, table):
    a = train(table, tmp_path, style="basic", svd_k=4, embedder=shared_embedder(),
              n_estimators=20)
    b = train(table, tmp_path, style="basic", svd_k=4, embedder=shared_embedder(),
              n_estimators=20)
    assert a.version == b.version  # same data and config
    np.testing.assert_array_equal(a.method_features, b.method_features)
    X = a.featurizer.transform_tasks(table.tasks)
    np.testing.assert_array_equal(a.predict_cost(X), b.predict_cost(X))  # seeded
    c = train(table, tmp_path, style="basic", svd_k=4, seed=1, embedder=shared_embedder(),
              n_estimators=20)
    assert c.version != a.version
    assert latest_version(tmp_path) == c.version
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        {a.version, c.version})
    assert load_model(tmp_path / a.version).version == a.version


def test_a_model_of_the_old_single_head_format_asks_for_a_retrain(tmp_path, table):
    model = train(table, tmp_path, style="basic", svd_k=4, embedder=shared_embedder(),
                  n_estimators=20, search=False)
    path = tmp_path / model.version / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(ModelNotFoundError, match="retrain"):
        load_model(tmp_path)


def test_missing_model_says_how_to_train(tmp_path):
    with pytest.raises(ModelNotFoundError, match="metainf train"):
        load_model(tmp_path)
    with pytest.raises(ModelNotFoundError, match="--model-dir"):
        load_model(tmp_path / "nowhere")


def test_unknown_xgboost_option_is_refused(table):
    with pytest.raises(TypeError, match="n_trees"):
        train(table, None, n_trees=3)
