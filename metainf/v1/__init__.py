"""Generated gRPC code of the metainf.v1 API (scripts/gen_protos.py)."""
