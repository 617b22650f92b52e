"""pb.ChatService/ChatStream: the original contract; every response carries the answer so far."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from gateways.rpc.calls import translated
from gateways.rpc.gen import chat_pb2
from gateways.service.chats import ChatService
from gateways.service.events import TurnDelta, TurnStarted

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name


class LegacyChatService:
    """Drop-in for the original Go service, without its shared-stream and cancel bugs."""

    def __init__(self, service: ChatService) -> None:
        self._service = service

    @translated
    async def ChatStream(self, request: chat_pb2.ChatRequest, context: Any) -> None:
        chat_id = request.chat_id if request.HasField("chat_id") and request.chat_id else None
        answer, sent = "", False
        turn = self._service.turn(request.user_id, chat_id, request.user_message)
        # Each call has its own turn and writes only to its own stream. Leaving this block
        # early (the client cancelled, went away or ran out of time) closes the turn, which
        # stops the LLM request and keeps the partial answer flagged interrupted.
        async with aclosing(turn) as events:
            async for event in events:
                if isinstance(event, TurnStarted):
                    chat_id = event.chat_id
                    continue
                if isinstance(event, TurnDelta):
                    answer += event.text
                elif sent:
                    continue  # finished: the last response already holds the whole answer
                await context.write(
                    chat_pb2.ChatResponse(chat_id=chat_id, user_id=request.user_id, content=answer)
                )
                sent = True
