"""What every servicer method shares: errors become status codes (never UNKNOWN), with advice."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from gateways import logs
from gateways.rpc.decoding import Undecodable
from gateways.rpc.errors import grpc_status
from store.errors import ChatServiceError, InvalidArgument

log = logging.getLogger("chatservice.grpc")
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[S, Req, Any], Awaitable[Resp]]
REQUEST_ID_KEY = "x-request-id"
INTERNAL = "the chat service failed unexpectedly; retry, and report it if it keeps happening"


async def abort(context: Any, exc: ChatServiceError) -> NoReturn:
    """End the call with the error's status code and message."""
    await context.abort(grpc_status(exc), exc.message)
    raise AssertionError("context.abort returned")


async def _request_id(context: Any) -> None:
    """The caller's x-request-id metadata (or a new id) on this call's log lines, and sent back."""
    offered = next((v for k, v in context.invocation_metadata() or () if k == REQUEST_ID_KEY), None)
    rid = logs.request_id(offered if isinstance(offered, str) else None)
    logs.bind(request_id=rid, chat_id=None, turn_id=None)
    await context.send_initial_metadata(((REQUEST_ID_KEY, rid),))


def translated(method: Method[S, Req, Resp]) -> Method[S, Req, Resp]:
    """Wrap a servicer method so that any error reaches the client as a proper status."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: Any) -> Resp:
        await _request_id(context)
        if isinstance(request, Undecodable):
            await abort(context, InvalidArgument(f"the request is not a valid message: {request.reason}"))
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except ChatServiceError as exc:
            failure = exc
        except Exception:
            log.exception("%s failed", getattr(method, "__name__", "call"))
            failure = ChatServiceError(INTERNAL)
        await abort(context, failure)

    return wrapper
