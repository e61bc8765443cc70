"""Select's answer cache: the same answers as without it, and nothing of an old model after
a reload; through a real Selector server on port 0."""

from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest
from synthetic_tables import external_table, shared_embedder

import metainf.selector.service as service
from metainf.selector.service import AnswerCache, SelectorServicer, normalised_request
from metainf.selector.training import train
from metainf.v1 import farm_pb2, farm_pb2_grpc

WORKLOAD = {"Input Output Length": 512, "Batch Size": 16}


def serve(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    farm_pb2_grpc.add_SelectorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, farm_pb2_grpc.SelectorStub(channel)


def fit(model_dir, n_estimators: int):
    return train(external_table(), model_dir, style="basic", svd_k=4,
                 embedder=shared_embedder(), n_estimators=n_estimators, search=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache-models")
    fit(d, 20)
    return d


@pytest.fixture
def pair(model_dir):
    """Two servers on one model: with the answer cache, and without (answer_cache=0)."""
    cached = SelectorServicer(model_dir, warm_up=False)
    plain = SelectorServicer(model_dir, warm_up=False, answer_cache=0)
    a, b = serve(cached), serve(plain)
    yield cached, a[2], b[2]
    for server, channel, _ in (a, b):
        channel.close()
        server.stop(0)


def request(workload_json: str | None = None, **kw) -> farm_pb2.SelectRequest:
    base = {"model": "Llama-2-7b", "workload_json": workload_json or json.dumps(WORKLOAD),
            "hardware": [farm_pb2.HardwareOption(name="L4"),
                         farm_pb2.HardwareOption(text="NVIDIA H200 141GB HBM3e")]}
    return farm_pb2.SelectRequest(**{**base, **kw})


QUESTIONS = [
    request(),
    request(budget=1e-6),
    request(budget=1e-6, risk="expected"),
    request(objective="cost", hardware=[farm_pb2.HardwareOption(name="T4",
                                                                price_per_hour=0.5)]),
    request(model="Mistral-7B", methods=["vllm"]),
    request(workload_json=json.dumps({"Input Output Length": 2048, "Batch Size": 1})),
]


def test_cached_answers_are_the_answers_without_the_cache(pair):
    cached, with_cache, without = pair
    for q in QUESTIONS:
        fresh = without.Select(q, timeout=60)
        first, again = with_cache.Select(q, timeout=60), with_cache.Select(q, timeout=60)
        assert first == fresh and again == fresh  # every field, every candidate, exactly
        assert again.candidates and again.candidates[0].HasField("interval")
    assert len(cached.answers) == 2 * len(QUESTIONS)  # keyed by its bytes and normal form


def test_a_cached_question_skips_the_selector_even_spelled_differently(pair, monkeypatch):
    cached, with_cache, _ = pair
    first = with_cache.Select(request(), timeout=60)
    calls = []
    real = service.select
    monkeypatch.setattr(service, "select", lambda *a, **k: calls.append(1) or real(*a, **k))
    spaced = request(workload_json='{ "Batch Size" : 16,\n "Input Output Length": 512 }',
                     objective="runtime", risk="upper")
    assert with_cache.Select(spaced, timeout=60) == first
    assert with_cache.Select(request(), timeout=60) == first
    assert calls == []
    assert with_cache.Select(request(budget=2.0), timeout=60).model_version
    assert calls == [1]  # a different question is computed


def test_errors_and_farm_hardware_questions_are_never_cached(model_dir):
    farm = [("L4", {"kind": "gpu", "accelerator": "NVIDIA L4", "accelerator_count": 1}, 0.8)]
    servicer = SelectorServicer(model_dir, warm_up=False, farm_hardware=lambda: list(farm))
    server, channel, stub = serve(servicer)
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                stub.Select(request(budget=-1.0), timeout=60)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        ask = request(hardware=[], all_farm_hardware=True)
        assert {c.hardware for c in stub.Select(ask, timeout=60).candidates} == {"L4"}
        farm.append(("T4", {"kind": "gpu", "accelerator": "NVIDIA T4",
                            "accelerator_count": 1}, 0.4))
        assert {c.hardware for c in stub.Select(ask, timeout=60).candidates} == {"L4", "T4"}
        assert len(servicer.answers) == 0
    finally:
        channel.close()
        server.stop(0)


def test_after_a_reload_nothing_of_the_old_model_is_served(tmp_path, monkeypatch):
    old = fit(tmp_path, 20)
    servicer = SelectorServicer(tmp_path, warm_up=False)
    server, channel, stub = serve(servicer)
    try:
        before = stub.Select(request(), timeout=60)
        assert stub.Select(request(), timeout=60) == before and len(servicer.answers) == 2
        new = fit(tmp_path, 60)
        assert new.version != old.version
        assert stub.ReloadModel(farm_pb2.ReloadModelRequest(),
                                timeout=60).model_version == new.version
        after = stub.Select(request(), timeout=60)
        fresh = SelectorServicer(tmp_path, warm_up=False, answer_cache=0)
        _, channel2, stub2 = server2 = serve(fresh)
        try:
            assert after == stub2.Select(request(), timeout=60)
        finally:
            channel2.close()
            server2[0].stop(0)
        assert after.model_version == new.version
        assert [c.predicted for c in after.candidates] != \
            [c.predicted for c in before.candidates]
        # a newer version found on disk (no ReloadModel) resets the cache too
        monkeypatch.setattr(service, "RELOAD_CHECK_S", 0.0)
        newest = fit(tmp_path, 40)
        assert stub.Select(request(), timeout=60).model_version == newest.version
    finally:
        channel.close()
        server.stop(0)


def test_an_unreadable_version_is_reported_once_until_it_changes(model_dir, tmp_path,
                                                                 monkeypatch, caplog):
    import logging
    import os
    import shutil

    d = tmp_path / "models"
    shutil.copytree(model_dir, d)
    servicer = SelectorServicer(d, warm_up=False)
    good = servicer.model.version
    # a newer version whose manifest this code cannot read (an older format)
    bad = d / "0123456789ab"
    shutil.copytree(d / good, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    (d / "LATEST").write_text("0123456789ab")
    monkeypatch.setattr(service, "RELOAD_CHECK_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="metainf.selector.service"):
        for _ in range(5):
            assert servicer._current().version == good  # the readable one keeps serving
    said = [r for r in caplog.records if "could not load model 0123456789ab" in r.message]
    assert len(said) == 1 and "format 1" in said[0].message
    # rewritten (a retraining into the same folder): tried again and served
    (bad / "manifest.json").write_text(json.dumps({**manifest, "version": "0123456789ab"}))
    stat = (bad / "manifest.json").stat()
    os.utime(bad / "manifest.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert servicer._current().version == "0123456789ab"


def test_answer_cache_by_hand():
    cache = AnswerCache(entries=3)
    cache.reset("v1")
    cache.put("v1", (b"a", b"a2"), "A")
    cache.put("v0", (b"z",), "Z")  # a late answer of an older model is dropped
    assert cache.get("v1", b"a") == "A" and cache.get("v1", b"a2") == "A"
    assert cache.get("v1", b"z") is None and cache.get("v2", b"a") is None
    cache.put("v1", (b"b", b"c"), "B")  # over 3 entries: the oldest go first
    assert cache.get("v1", b"a") is None and cache.get("v1", b"c") == "B"
    assert len(cache) == 3
    cache.reset("v2")
    assert cache.get("v2", b"c") is None and cache.get("v1", b"c") is None
    off = AnswerCache(entries=0)
    off.reset("v1")
    off.put("v1", (b"a",), "A")
    assert off.get("v1", b"a") is None


def test_normalised_request_keys_the_question_not_its_spelling():
    a = farm_pb2.SelectRequest(model="m", workload_json='{"b": 1, "a": [1, 2]}')
    b = farm_pb2.SelectRequest(model="m", workload_json='{"a":[1,2],"b":1}', objective="runtime",
                               risk="upper")
    c = farm_pb2.SelectRequest(model="m", workload_json='{"a":[1,2],"b":1}', risk="expected")
    assert normalised_request(a)[0] == normalised_request(b)[0] != normalised_request(c)[0]
    assert normalised_request(a)[1] == {"a": [1, 2], "b": 1}
    for bad in ('{oops', '[1]', ''):
        assert normalised_request(farm_pb2.SelectRequest(workload_json=bad)) is None
    assert normalised_request(farm_pb2.SelectRequest(workload_json="{}",
                                                     all_farm_hardware=True)) is None
