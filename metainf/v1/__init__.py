"""Generated gRPC code for the metainf.v1 wire API (scripts/gen_protos.py)."""
