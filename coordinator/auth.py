"""Tokens with roles: a server interceptor that authenticates and authorises every RPC.

A token file holds one token per line: ``TOKEN ROLE OPERATOR`` (``#`` starts a comment).
Roles: ``worker`` (register, heartbeat, lease, report results and block timings),
``client`` (select, place, status, export, list workers and models), ``admin`` (everything,
campaigns, model reload and promotion included); any role may ping. A Select that sets
``measure_if_unsure`` queues a campaign, so it also needs a role that may submit one
(checked by the coordinator's Selector service, :mod:`metainf.coordinator.unsure`).
Health and reflection never need a token. Tokens are compared in constant time and
never logged.
"""

from __future__ import annotations

import contextvars
import hmac
from dataclasses import dataclass
from pathlib import Path

import grpc

from metainf.client import TokenFileError
from metainf.coordinator.handlers import rewrap

ROLES = ("worker", "client", "admin")

METHOD_ROLES: dict[str, tuple[str, ...]] = {
    "/metainf.v1.Coordinator/RegisterWorker": ("worker", "admin"),
    "/metainf.v1.Coordinator/Heartbeat": ("worker", "admin"),
    "/metainf.v1.Coordinator/LeaseCell": ("worker", "admin"),
    "/metainf.v1.Coordinator/ReportResult": ("worker", "admin"),
    "/metainf.v1.Coordinator/ReportBlockTiming": ("worker", "admin"),
    "/metainf.v1.Coordinator/SubmitCampaign": ("admin",),
    "/metainf.v1.Coordinator/GetCampaignStatus": ("client", "admin"),
    "/metainf.v1.Coordinator/ExportResults": ("client", "admin"),
    "/metainf.v1.Coordinator/ListWorkers": ("client", "admin"),
    "/metainf.v1.Selector/Select": ("client", "admin"),
    "/metainf.v1.Selector/ReloadModel": ("admin",),
    "/metainf.v1.Selector/Ping": ("worker", "client", "admin"),
    "/metainf.v1.Selector/ListModels": ("client", "admin"),
    "/metainf.v1.Selector/PromoteModel": ("admin",),
    "/metainf.v1.Placement/Place": ("client", "admin"),
}
"""Which roles may call each RPC; a method not listed here needs no token."""

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


@dataclass(frozen=True)
class Identity:
    """Who is calling: their role and operator (anonymous when the farm runs open)."""

    role: str
    operator: str


ANONYMOUS = Identity(role="admin", operator="")
current_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar(
    "current_identity", default=ANONYMOUS)
"""The caller of the RPC being served (set by the interceptor)."""


def load_tokens(path: str | Path) -> dict[str, Identity]:
    """Read a server token file: token -> identity."""
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(f"token file not found: {path}")
    tokens: dict[str, Identity] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] not in ROLES:
            raise TokenFileError(f"{path}:{n}: expected 'TOKEN ROLE OPERATOR' with ROLE one of "
                                 f"{', '.join(ROLES)}")
        if len(parts[0]) < 16:
            raise TokenFileError(f"{path}:{n}: token too short (use at least 16 characters)")
        tokens[parts[0]] = Identity(role=parts[1], operator=parts[2])
    if not tokens:
        raise TokenFileError(f"{path}: no tokens")
    return tokens


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token and the caller's role on every RPC but health and reflection."""

    def __init__(self, tokens: dict[str, Identity]):
        self._tokens = list(tokens.items())

    def _identify(self, metadata) -> Identity | None:
        sent = ""
        for key, value in metadata or ():
            if key == "authorization" and value.startswith("Bearer "):
                sent = value[len("Bearer "):]
        found = None
        for token, identity in self._tokens:  # constant time, whichever token matches
            if hmac.compare_digest(token.encode(), sent.encode()):
                found = identity
        return found

    def intercept_service(self, continuation, handler_call_details):
        """Authenticate, authorise, then serve with the caller's identity in context."""
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_PREFIXES) or method not in METHOD_ROLES:
            return handler
        identity = self._identify(handler_call_details.invocation_metadata)

        def around(call, request, context):
            if identity is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "missing or unknown token: pass --token-file "
                              "(or METAINF_TOKEN_FILE)")
            if identity.role not in METHOD_ROLES[method]:
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"role {identity.role} may not call {method.rsplit('/', 1)[-1]}")
            token = current_identity.set(identity)
            try:
                return call(request, context)
            finally:
                current_identity.reset(token)

        return rewrap(handler, around)
