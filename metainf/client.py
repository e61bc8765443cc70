"""The coordinator's client: channels (size limits, tokens, TLS), deadlines, submit, status,
export."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from metainf.grid import load_grid_file
from metainf.p import rows_to_frame, write_p
from metainf.v1 import farm_pb2, farm_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message either side accepts (a grid with sampled records, an export chunk)."""

DEFAULT_DEADLINE_S = 30.0
"""Deadline of every unary client call, in seconds; calls wait (within it) for a
coordinator that is still starting."""

EXPORT_DEADLINE_S = 300.0


class TokenFileError(ValueError):
    """A token file that cannot be used."""


def read_client_token(token_file: str | None) -> str | None:
    """The token a client sends: first field of the first line of its token file."""
    path = token_file or os.environ.get("METAINF_TOKEN_FILE")
    if not path:
        return None
    try:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                return line.split()[0]
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from None
    raise TokenFileError(f"token file {path} holds no token")


class TokenClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call of a channel."""

    def __init__(self, token: str):
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, details):
        return _Details(details.method, details.timeout,
                        tuple(details.metadata or ()) + self._metadata, details.credentials,
                        getattr(details, "wait_for_ready", None),
                        getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        """Unary calls."""
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        """Server-streaming calls."""
        return continuation(self._details(client_call_details), request)


@dataclass(frozen=True)
class _Details(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: tuple
    credentials: object
    wait_for_ready: bool | None
    compression: object


def channel(address: str, token_file: str | None = None,
            tls_ca: str | None = None) -> grpc.Channel:
    """A channel to the coordinator: size limits, the farm token if any, TLS if a CA is given.

    The token comes from `token_file`, else the METAINF_TOKEN_FILE environment variable.
    """
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    tls_ca = tls_ca or os.environ.get("METAINF_TLS_CA")
    if tls_ca:
        creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
        ch = grpc.secure_channel(address, creds, options=options)
    else:
        ch = grpc.insecure_channel(address, options=options)
    token = read_client_token(token_file)
    return grpc.intercept_channel(ch, TokenClientInterceptor(token)) if token else ch


def coordinator_stub(address: str, token_file: str | None = None) -> farm_pb2_grpc.CoordinatorStub:
    """A Coordinator stub on a new channel."""
    return farm_pb2_grpc.CoordinatorStub(channel(address, token_file))


def submit_grid(address: str, grid_path: str | Path, token_file: str | None = None
                ) -> farm_pb2.SubmitCampaignResponse:
    """Validate and materialise a grid file locally, then submit it as a campaign."""
    grid = load_grid_file(grid_path)
    stub = coordinator_stub(address, token_file)
    return stub.SubmitCampaign(
        farm_pb2.SubmitCampaignRequest(grid_json=grid.model_dump_json(exclude_none=True)),
        timeout=DEFAULT_DEADLINE_S, wait_for_ready=True)


def campaign_status(address: str, campaign_id: str, token_file: str | None = None
                    ) -> farm_pb2.CampaignStatus:
    """One status snapshot of a campaign."""
    return coordinator_stub(address, token_file).GetCampaignStatus(
        farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id), timeout=DEFAULT_DEADLINE_S,
        wait_for_ready=True)


def export_campaign(address: str, campaign_id: str, out_path: str | Path,
                    token_file: str | None = None, all_replicas: bool = False) -> Path:
    """Fetch every row of a campaign's P and write it (+ FILE.meta.json); return the path.

    With `all_replicas`, rows of copies not accepted into P come too, with an `accepted`
    column."""
    stub = coordinator_stub(address, token_file)
    rows, meta = [], {}
    request = farm_pb2.ExportResultsRequest(campaign_id=campaign_id, all_replicas=all_replicas)
    for chunk in stub.ExportResults(request, timeout=EXPORT_DEADLINE_S, wait_for_ready=True):
        if chunk.meta_json:
            meta = json.loads(chunk.meta_json)
        rows.extend(chunk.rows)
    return write_p(rows_to_frame(rows, with_accepted=all_replicas), meta, out_path)
