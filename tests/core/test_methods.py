"""The method space: names, flags, engine configuration and engine keys."""

from __future__ import annotations

import pytest

from metainf.methods import PAPER8, MethodError, engine_key, method_from_name, parse_methods


def test_paper8_names_every_flag_combination_once():
    assert PAPER8 == ("none", "cb", "pc", "cp", "cb+pc", "cb+cp", "pc+cp", "cb+pc+cp")
    flags = {method_from_name(n).flags for n in PAPER8}
    assert len(flags) == 8


def test_engine_flags_are_always_explicit():
    none = method_from_name("none").engine_config()
    assert none == {"enable_prefix_caching": False, "enable_chunked_prefill": False}
    cp = method_from_name("pc+cp").engine_config()
    assert cp["enable_prefix_caching"] and cp["enable_chunked_prefill"]
    assert cp["max_num_batched_tokens"] == 512


def test_flag_order_does_not_matter_and_cb_is_client_side():
    assert method_from_name("cp+cb").name == "cb+cp"
    assert engine_key("m", method_from_name("none")) == engine_key("m", method_from_name("cb"))
    assert engine_key("m", method_from_name("pc")) != engine_key("m", method_from_name("none"))
    assert engine_key("m", method_from_name("pc")) != engine_key("n", method_from_name("pc"))


def test_named_methods_carry_engine_options():
    (m,) = parse_methods([{"name": "pc-fp8kv", "flags": ["pc"],
                           "engine_args": {"kv_cache_dtype": "fp8"}}])
    assert m.prefix_caching and m.engine_config()["kv_cache_dtype"] == "fp8"
    assert "kv_cache_dtype=fp8" in m.describe()


@pytest.mark.parametrize("bad", ["fast", "cb+cb", "pc+xx", ""])
def test_bad_names_are_refused_with_the_known_ones(bad):
    with pytest.raises(MethodError, match="known"):
        method_from_name(bad)


def test_bad_method_objects():
    with pytest.raises(MethodError, match="colour"):
        parse_methods([{"name": "x", "flags": [], "colour": 1}])
    with pytest.raises(MethodError, match="zz"):
        parse_methods([{"name": "x", "flags": ["zz"]}])
    with pytest.raises(MethodError, match="duplicate"):
        parse_methods(["pc", "pc"])
