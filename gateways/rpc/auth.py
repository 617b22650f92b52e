"""Token auth for every gRPC method but health and reflection: metadata `authorization`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from gateways.auth import token_matches

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MISSING = "missing or wrong token: send the metadata 'authorization: <token>' (or 'Bearer <token>')"


def metadata_value(details: Any, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        name, value = item
        if name == key and isinstance(value, str):
            return value
    return None


class TokenAuth(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects calls without the token as UNAUTHENTICATED before any servicer code runs."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(PUBLIC_PREFIXES):
            return handler
        if token_matches(metadata_value(details, "authorization"), self._token):
            return handler
        return _rejecting(handler)


async def _reject(request: Any, context: Any) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MISSING)


def _rejecting(handler: Any) -> Any:
    """A handler of the same kind as `handler` that only says UNAUTHENTICATED."""
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_reject)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_reject)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_reject)
    return grpc.unary_unary_rpc_method_handler(_reject)
