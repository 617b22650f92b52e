"""Server-Sent Events for a turn: `start`, `delta`..., then `end` with usage, or `error`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateways.http import shapes
from gateways.http.errors import error_body, http_status
from gateways.http.responses import COMPACT, json_bytes
from gateways.service.events import TurnDelta, TurnEvent, TurnFinished, TurnStarted
from store.errors import ChatServiceError

CONTENT_TYPE = "text/event-stream"
log = logging.getLogger("chatservice.http")


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One event; compact JSON never holds a raw newline, so `data` is always a single line."""
    return b"event: %s\ndata: %s\n\n" % (event.encode(), json_bytes(data, COMPACT))


def wants_events(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip().lower() == CONTENT_TYPE for part in accept.split(","))


async def stream_turn(
    request: web.Request, first: TurnStarted, events: AsyncIterator[TurnEvent]
) -> web.StreamResponse:
    """Send the turn as it happens. Errors after the first byte become an `error` event.

    A client that goes away cancels this handler (handler_cancellation) or fails its next
    write; either way the caller closes `events`, which aborts the turn and the LLM request.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{CONTENT_TYPE}; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # proxies such as nginx must not hold events back
        }
    )
    await response.prepare(request)
    await response.write(frame("start", shapes.started(first)))
    try:
        async for event in events:
            if isinstance(event, TurnDelta):
                await response.write(frame("delta", {"text": event.text}))
            elif isinstance(event, TurnFinished):
                await response.write(frame("end", shapes.finished(event)))
    except ChatServiceError as exc:
        status = http_status(exc)
        if status >= 500:
            log.warning("%s %s -> error event (%d): %s", request.method, request.path, status, exc.message)
        await response.write(frame("error", {**error_body(exc), "status": status}))
    await response.write_eof()
    return response
