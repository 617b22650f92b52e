"""Requests whose bytes do not parse as their message: INVALID_ARGUMENT, where gRPC says UNKNOWN."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

# The chat services' methods are wrapped by calls.translated, which answers an Undecodable.
CHAT_PREFIXES = ("/pb.ChatService/", "/chatservice.v1.ChatService/")


class Undecodable:
    """Stands in for a request that is not a valid message of its type (bad wire format, bad UTF-8)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse_or_flag(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError as exc:
            return Undecodable(str(exc))

    return parse_or_flag


class TolerantDecoding(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets an unparsable request reach the method as an Undecodable instead of failing as UNKNOWN."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        if not details.method.startswith(CHAT_PREFIXES):
            return handler
        return handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
