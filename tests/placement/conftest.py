"""Fixtures of the placement tests: fresh copies of the toy fleet and the anchor file."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from placement_fleets import ANCHOR, toy_dict


@pytest.fixture
def toy() -> dict[str, Any]:
    """A fresh copy of the toy fleet's dict (tests may edit it)."""
    return copy.deepcopy(toy_dict())


@pytest.fixture
def anchor_dict() -> dict[str, Any]:
    """The shipped anchor file, parsed."""
    return yaml.safe_load(ANCHOR.read_text(encoding="utf-8"))
