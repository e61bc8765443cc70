"""The method space: acceleration flags (cb, pc, cp) plus free engine options."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FLAGS = ("cb", "pc", "cp")
"""Continuous batching, prefix caching, chunked prefill, in canonical name order."""

FLAG_WORDS = {
    "cb": "continuous batching",
    "pc": "prefix caching",
    "cp": "chunked prefill",
}

DEFAULT_CP_TOKEN_BUDGET = 512
"""Tokens per engine step under chunked prefill (vLLM max_num_batched_tokens)."""


class MethodError(ValueError):
    """A method name or definition that does not parse."""


def _canonical_name(flags: frozenset[str]) -> str:
    return "+".join(f for f in FLAGS if f in flags) or "none"


def _paper8() -> tuple[str, ...]:
    names = []
    for k in range(len(FLAGS) + 1):
        for combo in itertools.combinations(FLAGS, k):
            names.append(_canonical_name(frozenset(combo)))
    return tuple(names)


PAPER8 = _paper8()
"""The paper's 8 methods: none, cb, pc, cp, cb+pc, cb+cp, pc+cp, cb+pc+cp."""


@dataclass(frozen=True)
class Method:
    """One point of the method space: three flags plus extra engine options."""

    name: str
    continuous_batching: bool = False
    prefix_caching: bool = False
    chunked_prefill: bool = False
    engine_args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flags(self) -> tuple[str, ...]:
        """The flags that are on, in canonical order."""
        on = {"cb": self.continuous_batching, "pc": self.prefix_caching,
              "cp": self.chunked_prefill}
        return tuple(f for f in FLAGS if on[f])

    def engine_config(self) -> dict[str, Any]:
        """Engine options this method needs; cb is client-side and not among them.

        Both vLLM flags are always explicit: recent vLLM turns them on when unset.
        """
        config: dict[str, Any] = {
            "enable_prefix_caching": self.prefix_caching,
            "enable_chunked_prefill": self.chunked_prefill,
        }
        if self.chunked_prefill:
            config["max_num_batched_tokens"] = DEFAULT_CP_TOKEN_BUDGET
        config.update(self.engine_args)
        return config

    def describe(self) -> str:
        """The method in words."""
        on = [FLAG_WORDS[f] for f in self.flags]
        text = ", ".join(on) if on else "no acceleration (static batching)"
        if self.engine_args:
            extra = ", ".join(f"{k}={v}" for k, v in sorted(self.engine_args.items()))
            text += f"; engine options: {extra}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (name, flags, engine_args)."""
        return {"name": self.name, "flags": list(self.flags), "engine_args": dict(self.engine_args)}


def method_from_name(name: str) -> Method:
    """Parse a flag combination such as 'cb+pc' (any order) or 'none'."""
    name = name.strip()
    if name == "none":
        return Method("none")
    parts = [p.strip() for p in name.split("+")]
    unknown = [p for p in parts if p not in FLAGS]
    if unknown or not parts or len(set(parts)) != len(parts):
        raise MethodError(
            f"unknown method {name!r}: use none or flags {'/'.join(FLAGS)} joined by '+' "
            f"(known: {', '.join(PAPER8)})"
        )
    return _from_flags(_canonical_name(frozenset(parts)), parts, {})


def _from_flags(name: str, flags: list[str], engine_args: Mapping[str, Any]) -> Method:
    return Method(
        name=name,
        continuous_batching="cb" in flags,
        prefix_caching="pc" in flags,
        chunked_prefill="cp" in flags,
        engine_args=dict(engine_args),
    )


def method_from_dict(obj: Mapping[str, Any]) -> Method:
    """Parse a named method object: {name, flags: [cb, pc, cp], engine_args: {...}}."""
    allowed = {"name", "flags", "engine_args"}
    extra = set(obj) - allowed
    if extra:
        raise MethodError(f"unknown key(s) in method {obj.get('name', '?')!r}: {sorted(extra)}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise MethodError("a method object needs a non-empty 'name'")
    flags = list(obj.get("flags", []))
    bad = [f for f in flags if f not in FLAGS]
    if bad:
        raise MethodError(f"method {name!r}: unknown flag(s) {bad}; known: {list(FLAGS)}")
    engine_args = obj.get("engine_args", {}) or {}
    if not isinstance(engine_args, Mapping):
        raise MethodError(f"method {name!r}: engine_args must be an object")
    try:
        json.dumps(engine_args)
    except TypeError as exc:
        raise MethodError(f"method {name!r}: engine_args must be JSON values ({exc})") from exc
    return _from_flags(name, flags, engine_args)


def method_from_cell(spec) -> Method:
    """The method a wire CellSpec carries: its name, three flags and engine_args_json."""
    return Method(name=spec.method, continuous_batching=spec.continuous_batching,
                  prefix_caching=spec.prefix_caching, chunked_prefill=spec.chunked_prefill,
                  engine_args=json.loads(spec.engine_args_json or "{}"))


def wire_fields(method: Method, with_engine_args: bool = True) -> dict[str, Any]:
    """The fields that carry a method on the wire: CellSpec's, or ResultRow's without
    `engine_args_json`."""
    fields: dict[str, Any] = {"method": method.name,
                              "continuous_batching": method.continuous_batching,
                              "prefix_caching": method.prefix_caching,
                              "chunked_prefill": method.chunked_prefill}
    if with_engine_args:
        fields["engine_args_json"] = json.dumps(dict(method.engine_args), sort_keys=True)
    return fields


def parse_methods(spec: str | list[Any]) -> list[Method]:
    """Parse a grid's `methods`: 'paper8', or a list of names and method objects."""
    if isinstance(spec, str):
        if spec == "paper8":
            return [method_from_name(n) for n in PAPER8]
        return [method_from_name(n) for n in spec.split(",")]
    methods = [method_from_dict(m) if isinstance(m, Mapping) else method_from_name(str(m))
               for m in spec]
    if not methods:
        raise MethodError("methods is empty: name at least one method or 'paper8'")
    names = [m.name for m in methods]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MethodError(f"duplicate method name(s): {dupes}")
    return methods


def engine_key(model: str, method: Method) -> str:
    """Key of the engine a cell needs: model + engine configuration (cb is excluded)."""
    blob = json.dumps({"model": model, "engine": method.engine_config()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
