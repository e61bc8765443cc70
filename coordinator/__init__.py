"""Coordinator: gRPC services, SQLite store, scheduler, campaigns and export of P."""
