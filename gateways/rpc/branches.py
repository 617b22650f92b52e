"""chatservice.v1's branch calls, converted: a path's messages with their siblings, search, turn streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from gateways.rpc import convert
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.service.branching import Branching
from gateways.service.events import TurnEvent
from store.errors import InvalidArgument


def wanted(request: pb.RegenerateRequest | pb.EditMessageRequest | pb.SwitchBranchRequest) -> int:
    """The request's message_id; 0 (unset) is INVALID_ARGUMENT."""
    if request.message_id == 0:
        raise InvalidArgument("message_id is required")
    return int(request.message_id)


async def stream(turn: AsyncGenerator[TurnEvent, None], context: Any) -> None:
    """Write a turn's events; leaving early closes the turn, as SendMessage does."""
    async with aclosing(turn) as events:
        async for event in events:
            await context.write(convert.turn_event(event))


async def list_messages(branching: Branching, request: pb.ListMessagesRequest) -> pb.ListMessagesResponse:
    page = await branching.path(
        request.user_id,
        request.chat_id,
        leaf=request.leaf_id or None,
        include_erased=request.include_erased,
        page_size=request.page_size,
        page_token=request.page_token,
    )
    messages = []
    for m in page.messages:
        shown = convert.message(m)
        s = page.siblings.get(m.seq)
        ids, position = (s.ids, s.position) if s else ((m.seq,), 1)
        shown.sibling_ids.extend(ids)
        shown.sibling_position, shown.sibling_count = position, len(ids)
        messages.append(shown)
    return pb.ListMessagesResponse(messages=messages, next_page_token=page.next_page_token)


async def search(branching: Branching, request: pb.SearchChatsRequest) -> pb.SearchChatsResponse:
    hits, token = await branching.search(
        request.user_id, request.query, request.page_size, request.page_token
    )
    found = [
        pb.ChatHit(chat=convert.chat(h.chat), snippet=h.snippet if h.seq else "", message_id=h.seq or 0)
        for h in hits
    ]
    return pb.SearchChatsResponse(hits=found, next_page_token=token)
