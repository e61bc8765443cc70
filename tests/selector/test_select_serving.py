"""Select's serving shortcuts: cached predictions, a cheap embedding cache, one torch thread."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_tables import external_table, shared_embedder

from metainf.selector import selection
from metainf.selector.artifact import train
from metainf.selector.embeddings import Embedder
from metainf.selector.selection import HardwareOption, SelectQuery, predict_log_cost, select

WORKLOAD = {"Input Output Length": 512, "Batch Size": 16}


@pytest.fixture(scope="module")
def model():
    return train(external_table(), None, style="rich", svd_k=16, embedder=shared_embedder(),
                 n_estimators=50)


class CountingEstimator:
    """Stands in for the fitted regressor: predicts with it and counts the rows asked."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.rows = 0

    def predict(self, X):
        self.rows += len(X)
        return self.estimator.predict(X)


def ask(model, text: str = "", name: str = "A100-80GB"):
    hw = HardwareOption(text=text) if text else HardwareOption(name=name)
    return select(model, SelectQuery(model="Llama-2-7b", hardware=(hw,), workload=WORKLOAD))


def test_cached_predictions_equal_the_boosters_and_skip_it(model):
    real = model.selector.estimator_
    model.cache.pop("predictions", None)
    first = ask(model)
    counting = CountingEstimator(real)
    model.selector.estimator_ = counting
    try:
        again = ask(model)
        assert counting.rows == 0
        other = ask(model, name="T4")
        assert counting.rows == len(other.candidates)
    finally:
        model.selector.estimator_ = real
    assert [(c.method, c.predicted) for c in again.candidates] == \
        [(c.method, c.predicted) for c in first.candidates]
    X = np.random.default_rng(0).normal(size=(5, real.n_features_in_))
    np.testing.assert_allclose(predict_log_cost(model, X), real.predict(X), rtol=1e-6)
    np.testing.assert_allclose(predict_log_cost(model, X), real.predict(X), rtol=1e-6)


def test_prediction_cache_stays_within_its_bound(model, monkeypatch):
    monkeypatch.setattr(selection, "PREDICTION_CACHE_ROWS", 10)
    model.cache.pop("predictions", None)
    rng = np.random.default_rng(1)
    for _ in range(6):
        predict_log_cost(model, rng.normal(size=(4, model.selector.estimator_.n_features_in_)))
        assert len(model.cache["predictions"]) <= 10


def test_unseen_hardware_answers_the_same_from_cache(model):
    text = "NVIDIA H200 141GB HBM3e, 4.8 TB/s"
    first = ask(model, text=text)
    second = ask(model, text=text)
    assert first.method == second.method
    assert [c.predicted for c in first.candidates] == [c.predicted for c in second.candidates]


def test_embedding_cache_commits_without_fsync(tmp_path):
    db = Embedder(cache_dir=tmp_path)._store()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_serving_runs_torch_on_one_thread():
    torch = pytest.importorskip("torch")
    from metainf.selector.service import SERVING_TORCH_THREADS, _limit_torch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _limit_torch_threads()
        assert torch.get_num_threads() == SERVING_TORCH_THREADS == 1
    finally:
        torch.set_num_threads(before)
