"""Generate the Python gRPC package `metainf.v1` from `protos/` (never edit its output)."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out_dir: Path = ROOT) -> None:
    """Run protoc over every .proto under protos/, writing _pb2, _pb2_grpc and .pyi."""
    root = ROOT / "protos"
    protos = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{ROOT / 'protos'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    init = out_dir / "metainf" / "v1" / "__init__.py"
    init.write_text('"""Generated gRPC code of the metainf.v1 API (scripts/gen_protos.py)."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
