"""chatservice.v1.ChatService: turns streamed as events, and the user's chats and messages."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from google.protobuf.empty_pb2 import Empty

from gateways.rpc import branches, convert
from gateways.rpc.calls import translated
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.service.branching import Branching
from gateways.service.chats import ChatService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatService"].full_name


class V1ChatService:
    def __init__(self, service: ChatService) -> None:
        self._service = service
        self._branching = Branching(service, service.store)

    @translated
    async def Regenerate(self, request: pb.RegenerateRequest, context: Any) -> None:
        turn = self._branching.regenerate(request.user_id, request.chat_id, branches.wanted(request))
        await branches.stream(turn, context)

    @translated
    async def EditMessage(self, request: pb.EditMessageRequest, context: Any) -> None:
        message_id = branches.wanted(request)
        turn = self._branching.edit(request.user_id, request.chat_id, message_id, request.content)
        await branches.stream(turn, context)

    @translated
    async def SwitchBranch(self, request: pb.SwitchBranchRequest, context: Any) -> pb.Chat:
        record, window = await self._branching.switch(
            request.user_id, request.chat_id, branches.wanted(request)
        )
        return convert.chat(record, window)

    @translated
    async def RenameChat(self, request: pb.RenameChatRequest, context: Any) -> pb.Chat:
        record, window = await self._branching.rename(request.user_id, request.chat_id, request.title)
        return convert.chat(record, window)

    @translated
    async def SearchChats(self, request: pb.SearchChatsRequest, context: Any) -> pb.SearchChatsResponse:
        return await branches.search(self._branching, request)

    @translated
    async def SendMessage(self, request: pb.SendMessageRequest, context: Any) -> None:
        chat_id = request.chat_id or None
        turn = self._service.turn(request.user_id, chat_id, request.content, create_missing=chat_id is None)
        # Leaving early (cancel, disconnect, deadline) closes the turn: the LLM request stops
        # and the partial answer is kept, flagged interrupted.
        async with aclosing(turn) as events:
            async for event in events:
                await context.write(convert.turn_event(event))

    @translated
    async def CreateChat(self, request: pb.CreateChatRequest, context: Any) -> pb.Chat:
        record, window = await self._service.create_chat(
            request.user_id, convert.overrides(request.parameters), request.chat_id or None
        )
        return convert.chat(record, window)

    @translated
    async def GetChat(self, request: pb.GetChatRequest, context: Any) -> pb.Chat:
        record, window = await self._service.get_chat(request.user_id, request.chat_id)
        return convert.chat(record, window)

    @translated
    async def ListChats(self, request: pb.ListChatsRequest, context: Any) -> pb.ListChatsResponse:
        chats, token = await self._service.list_chats(request.user_id, request.page_size, request.page_token)
        return pb.ListChatsResponse(chats=[convert.chat(c) for c in chats], next_page_token=token)

    @translated
    async def ListMessages(self, request: pb.ListMessagesRequest, context: Any) -> pb.ListMessagesResponse:
        return await branches.list_messages(self._branching, request)

    @translated
    async def EndChat(self, request: pb.EndChatRequest, context: Any) -> pb.Chat:
        await self._service.end_chat(request.user_id, request.chat_id)
        record, window = await self._service.get_chat(request.user_id, request.chat_id)
        return convert.chat(record, window)

    @translated
    async def DeleteChat(self, request: pb.DeleteChatRequest, context: Any) -> Empty:
        await self._service.delete_chat(request.user_id, request.chat_id)
        return Empty()
