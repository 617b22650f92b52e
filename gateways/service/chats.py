"""The service layer both gateways call: a user's chats and their messages, on top of their turns."""

from __future__ import annotations

from dataclasses import replace

from actors.protocol import WindowInfo
from gateways.service import paging
from gateways.service.ids import check_chat_id, check_new_chat_id, check_user_id, new_chat_id
from gateways.service.params import ChatOverrides
from gateways.service.turns import TurnService
from store.base import ChatCursor
from store.records import ChatRecord, MessageRecord


class ChatService(TurnService):
    """Chats and turns for one gateway process (turns.py runs the turns)."""

    async def create_chat(
        self, user_id: str, overrides: ChatOverrides | None = None, chat_id: str | None = None
    ) -> tuple[ChatRecord, WindowInfo]:
        """A new chat with the defaults or the given overrides; the id is generated unless given."""
        check_user_id(user_id)
        if chat_id:
            await self._owners.refuse_taken(check_new_chat_id(chat_id))  # without waking its actor
        chat_id = chat_id or new_chat_id()
        new = await self.new_chat(overrides)
        await self._conversations.create(chat_id, user_id, new)
        self._owners.remember(chat_id, user_id, new.params.model)
        return self._shown(*await self._conversations.describe(chat_id, user_id))

    async def get_chat(self, user_id: str, chat_id: str) -> tuple[ChatRecord, WindowInfo]:
        await self._owners.check(check_user_id(user_id), check_chat_id(chat_id))
        return self._shown(*await self._conversations.describe(chat_id, user_id))

    def _shown(self, record: ChatRecord, window: WindowInfo) -> tuple[ChatRecord, WindowInfo]:
        if window.correction is None:
            # No turn since the actor's activation: show what the next one will be planned with.
            window = replace(window, correction=self._answering.calibration.correction(record.params.model))
        return record, window

    async def end_chat(self, user_id: str, chat_id: str) -> ChatRecord:
        await self._owners.check(check_user_id(user_id), check_chat_id(chat_id))
        return await self._conversations.end(chat_id, user_id)

    async def delete_chat(self, user_id: str, chat_id: str) -> None:
        await self._owners.check(check_user_id(user_id), check_chat_id(chat_id))
        await self._conversations.delete(chat_id, user_id)
        self._owners.forget(chat_id)

    async def list_chats(
        self, user_id: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[ChatRecord], str]:
        """A page of the user's chats, newest first, and the token of the next page ('' at the end)."""
        size = paging.page_size(page_size, default=20, most=100)
        chats = await self._store.list_chats(check_user_id(user_id), size + 1, paging.chat_cursor(page_token))
        if len(chats) <= size:
            return chats, ""
        last = chats[size - 1]
        return chats[:size], paging.chat_token(ChatCursor(last.created_at, last.id))

    async def list_messages(
        self,
        user_id: str,
        chat_id: str,
        *,
        include_erased: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[MessageRecord], str]:
        """A page of a chat's messages in order (erased ones only if asked), and the next token."""
        # These reads bypass the actor, so the owner is checked here, always.
        await self._owners.check(check_user_id(user_id), check_chat_id(chat_id), trust_cache=False)
        size = paging.page_size(page_size, default=100, most=1000)
        after = paging.message_cursor(page_token)
        messages = await self._store.list_messages(
            chat_id, include_erased=include_erased, after_seq=after, limit=size + 1
        )
        if len(messages) <= size:
            return messages, ""
        return messages[:size], paging.message_token(messages[size - 1].seq)

    async def claim_event(self, event_id: str, source: str) -> bool:
        """True the first time an inbound event id (a webhook delivery) is seen, by any gateway."""
        return await self._store.claim_event(event_id, source)
