"""A turn's HTTP answer: Server-Sent Events when the client accepts them, else one JSON object."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from gateways.http import shapes, sse
from gateways.http.responses import json_response
from gateways.service.events import TurnDelta, TurnEvent, TurnFinished, TurnStarted


async def respond_turn(request: web.Request, turn: AsyncGenerator[TurnEvent, None]) -> web.StreamResponse:
    """A turn's answer: SSE if the client accepts it, else JSON once the turn ended."""
    async with aclosing(turn) as events:
        first = await anext(events)
        assert isinstance(first, TurnStarted)
        if sse.wants_events(request):
            return await sse.stream_turn(request, first, events)
        parts: list[str] = []
        async for event in events:
            if isinstance(event, TurnDelta):
                parts.append(event.text)
            elif isinstance(event, TurnFinished):
                answer = {**shapes.started(first), **shapes.finished(event), "content": "".join(parts)}
                return json_response(answer)
    raise AssertionError("a turn always ends with TurnFinished or an error")
