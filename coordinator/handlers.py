"""Wrapping a gRPC method handler's behaviour, for server interceptors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


def rewrap(handler: grpc.RpcMethodHandler,
           around: Callable[[Callable, Any, grpc.ServicerContext], Any]) -> grpc.RpcMethodHandler:
    """The same unary-unary or unary-stream handler, its behaviour run through `around`.

    `around(call, request, context)` must call `call(request, context)`; a streamed
    response is collected inside it so that `around`'s set-up and tear-down enclose it.
    """
    if handler.response_streaming:
        inner = handler.unary_stream

        def collect(request, context):
            return list(inner(request, context))

        def stream(request, context):
            return iter(around(collect, request, context))

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def unary(request, context):
        return around(handler.unary_unary, request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer)
