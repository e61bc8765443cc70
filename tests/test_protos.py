"""The generated metainf.v1 package matches protos/ (regenerate with `make protos`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_up_to_date(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts/gen_protos.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(tmp_path)
    for name in ("farm_pb2.py", "farm_pb2_grpc.py", "farm_pb2.pyi"):
        fresh = (tmp_path / "metainf/v1" / name).read_text(encoding="utf-8")
        committed = (ROOT / "metainf/v1" / name).read_text(encoding="utf-8")
        assert fresh == committed, f"metainf/v1/{name} is stale: run `make protos`"
