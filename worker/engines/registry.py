"""Engines by name; an unknown name fails with the list of known ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from metainf.worker.engines.base import Engine

_REGISTRY: dict[str, Callable[[], Engine]] = {}


def register(name: str, factory: Callable[[], Engine]) -> None:
    """Make an engine available under a name."""
    _REGISTRY[name] = factory


def known_engines() -> list[str]:
    """Names of the registered engines."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_engine(name: str) -> Engine:
    """A new, not yet started engine: a registered name, or 'package.module:Class'."""
    _load_builtin()
    if ":" in name and name not in _REGISTRY:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(known_engines())}"
                         ) from None


def _load_builtin() -> None:
    if "vllm" not in _REGISTRY:
        from metainf.worker.engines.vllm import VllmEngine
        register("vllm", VllmEngine)
