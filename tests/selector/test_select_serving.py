"""Select's serving shortcuts: cached predictions, a cheap embedding cache, one torch thread,
unseen texts embedded concurrently and in bf16 where the CPU has it."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_tables import external_table, shared_embedder

from metainf.selector import selection
from metainf.selector.artifact import SERVING_EMBEDDING_PRECISION, load_model
from metainf.selector.embeddings import Embedder, native_bf16
from metainf.selector.query import HardwareOption, SelectQuery
from metainf.selector.selection import predict_log_cost, select
from metainf.selector.training import train

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

    def __getattr__(self, name):  # everything but predict is the real estimator's
        return getattr(self.estimator, name)


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


HARDWARE_TEXTS = ["NVIDIA H200 141GB HBM3e, 4.8 TB/s", "AMD MI300X 192 GB HBM3", "x86",
                  "Intel Xeon Platinum 8480+ 56 cores", "8x NVIDIA H100 SXM 80GB", "L4"]


def test_one_text_embeds_as_sentence_transformers_encode(tmp_path):
    embedder = Embedder(cache_dir=tmp_path)
    st = embedder._load_model()
    for text in HARDWARE_TEXTS:
        expected = st.encode([text], normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
        np.testing.assert_array_equal(embedder.encode([text]), expected)


def test_concurrent_unseen_texts_embed_as_one_at_a_time(tmp_path):
    import threading

    alone = Embedder(cache_dir=tmp_path / "alone")
    expected = {t: alone.encode([t])[0] for t in HARDWARE_TEXTS}
    shared = Embedder(cache_dir=tmp_path / "shared")
    shared.encode(["load the model first"])
    got, errors = {}, []

    def embed(text):
        try:
            got[text] = shared.encode([text])[0]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=embed, args=(t,)) for t in HARDWARE_TEXTS * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for text in HARDWARE_TEXTS:
        np.testing.assert_array_equal(got[text], expected[text])
    reread = Embedder(cache_dir=tmp_path / "shared")  # all were written to the store
    reread._read_store([reread._key(t) for t in HARDWARE_TEXTS])
    assert len(reread._memory) == len(HARDWARE_TEXTS)


def test_bf16_embeddings_are_close_and_cached_apart_from_float32(tmp_path):
    bf16 = Embedder(cache_dir=tmp_path, precision="bfloat16")
    assert bf16.bf16 == native_bf16()
    b = bf16.encode(HARDWARE_TEXTS)
    a = Embedder(cache_dir=tmp_path / "fp32").encode(HARDWARE_TEXTS)
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.sum(a * b, axis=1)) > 0.9999
    if native_bf16():
        assert bf16._key("L4") != bf16._key("L4", bf16=True)
        assert not np.array_equal(a, b)
    fresh = Embedder(cache_dir=tmp_path)  # float32 never reads bf16 values back
    np.testing.assert_array_equal(fresh.encode(HARDWARE_TEXTS), a)


def test_bf16_serving_answers_known_texts_with_their_float32_vectors(tmp_path):
    exact = Embedder(cache_dir=tmp_path).encode(HARDWARE_TEXTS)  # as training stores them
    serving = Embedder(cache_dir=tmp_path, precision="bfloat16")
    np.testing.assert_array_equal(serving.encode(HARDWARE_TEXTS), exact)
    assert serving._models == {}  # nothing needed the model


def test_preload_readies_the_model_without_caching_anything(tmp_path):
    embedder = Embedder(cache_dir=tmp_path, precision="bfloat16")
    embedder.preload()
    assert embedder._models and embedder._memory == {}


def test_precision_is_checked_and_left_out_of_pickles():
    import pickle

    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="int8")
    state = Embedder(precision="bfloat16").__getstate__()
    assert "precision" not in state  # older versions load the saved featurizer too
    assert pickle.loads(pickle.dumps(Embedder(precision="bfloat16"))).precision == "float32"


def test_a_loaded_model_embeds_in_the_serving_precision(tmp_path):
    trained = train(external_table(), tmp_path, style="rich", svd_k=8,
                    embedder=shared_embedder(), n_estimators=20)
    assert trained.featurizer.embedder_.precision == "float32"
    loaded = load_model(tmp_path)
    assert loaded.featurizer.embedder_.precision == SERVING_EMBEDDING_PRECISION
    assert loaded.nearest_embedder() is loaded.featurizer.embedder_
    text = "NVIDIA H200 141GB HBM3e, 4.8 TB/s"
    assert ask(loaded, text=text).method == ask(trained, text=text).method


def test_memory_of_first_seen_texts_stays_bounded(model, monkeypatch, tmp_path):
    from metainf.selector import embeddings, features

    monkeypatch.setattr(embeddings, "MEMORY_ENTRIES", 3)
    embedder = Embedder(cache_dir=tmp_path)
    texts = [f"GPU model {i}" for i in range(6)]
    first = embedder.encode(texts)
    assert len(embedder._memory) == 3
    assert np.allclose(embedder.encode(texts[:1]), first[:1])  # read back from the store

    encoders = list(model.featurizer.encoders_.values())
    cap = max(len(e.vectors_) for e in encoders) + 1
    monkeypatch.setattr(features, "MAX_CACHED_VECTORS", cap)
    answers = [ask(model, text=f"NVIDIA test GPU {i}, {40 + i} GB HBM") for i in range(3)]
    assert all(len(e.vectors_) <= cap for e in encoders)
    again = ask(model, text="NVIDIA test GPU 2, 42 GB HBM")  # computed afresh, same answer
    assert [c.predicted for c in again.candidates] == [c.predicted for c in answers[2].candidates]


OPENVINO_VARIANT = "openvino-bf16" if native_bf16() else "openvino"
"""The serving variant on this CPU: OpenVINO in bf16 where bf16 is native, float32 elsewhere."""


def test_serving_embeds_new_texts_with_openvino_close_to_float32(tmp_path):
    pytest.importorskip("openvino")
    exact = Embedder(cache_dir=tmp_path / "fp32").encode(HARDWARE_TEXTS)
    serving = Embedder(cache_dir=tmp_path / "serve", precision="bfloat16")
    assert serving.variant == OPENVINO_VARIANT
    got = serving.encode(HARDWARE_TEXTS)
    assert got.dtype == np.float32 and got.shape == exact.shape
    assert np.min(np.sum(got * exact, axis=1)) > (0.9999 if native_bf16() else 0.99999)
    ir = list((tmp_path / "serve" / "openvino").glob("*/model.xml"))
    assert len(ir) == 1  # converted once, under the embedding cache folder
    # kept apart from the exact vectors: a float32 Embedder on that cache computes its own
    assert serving._key("L4") != serving._key("L4", OPENVINO_VARIANT)
    fresh = Embedder(cache_dir=tmp_path / "serve")
    np.testing.assert_array_equal(fresh.encode(HARDWARE_TEXTS), exact)


def test_a_later_embedder_reads_the_ir_without_converting(tmp_path, monkeypatch):
    ov = pytest.importorskip("openvino")
    text = "AMD MI300X 192 GB HBM3"
    first = Embedder(cache_dir=tmp_path, precision="bfloat16")
    expected = first._embed_one(first._load_model(OPENVINO_VARIANT), text, OPENVINO_VARIANT)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(ov, "convert_model", no_conversion)
    again = Embedder(cache_dir=tmp_path, precision="bfloat16")
    again.preload()
    assert again.variant == OPENVINO_VARIANT and again._openvino is not None
    got = again._embed_one(again._load_model(OPENVINO_VARIANT), text, OPENVINO_VARIANT)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_without_openvino_serving_falls_back_to_torch(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails
    exact = Embedder(cache_dir=tmp_path / "fp32").encode(HARDWARE_TEXTS[:2])
    serving = Embedder(cache_dir=tmp_path / "serve", precision="bfloat16")
    got = serving.encode(HARDWARE_TEXTS[:2])
    if native_bf16():  # torch bf16 autocast, cached apart from float32
        assert serving.variant == "bfloat16"
        assert np.min(np.sum(got * exact, axis=1)) > 0.9999 and not np.array_equal(got, exact)
    else:
        assert serving.variant == "float32"
        np.testing.assert_array_equal(got, exact)
    again = Embedder(cache_dir=tmp_path / "serve", precision="bfloat16")
    again.preload()  # the warm-up falls back the same way
    assert again.variant == serving.variant
