"""A conversation's own operations besides turns: create, describe, end and delete its chat."""

from __future__ import annotations

from dataclasses import replace

from actors.protocol import NewChat, WindowInfo
from actors.state import ChatState
from actors.turns import TurnSlot
from store.errors import AlreadyExists, StaleState
from store.records import ChatRecord, ChatStatus


class ChatOperations(ChatState):
    """Each waits for any running turn (the chat's turn slot) before it changes the chat."""

    _slot: TurnSlot

    async def create(self, user_id: str, new: NewChat) -> ChatRecord:
        """Create the chat with no turn yet; AlreadyExists if the id is taken."""
        async with self._slot:
            await self._ensure_loaded()
            if self.chat is not None:
                raise AlreadyExists(f"chat {self.chat_id!r} already exists")
            first = self._opening(new)
            leaf = first[-1].seq if first else None
            chat = ChatRecord(id=self.chat_id, user_id=user_id, params=new.params, active_leaf=leaf)
            try:
                await self._store.create_chat(chat, first)
            except AlreadyExists:
                self._loaded = False
                raise
            self._set_state(chat, first)
            return chat

    async def describe(self, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        """The chat and its window, for its owner."""
        await self._ensure_loaded()
        chat = self._owned(user_id)
        return chat, self.window_info()

    async def end(self, user_id: str) -> ChatRecord:
        """Mark the chat ended (after any running turn); further turns fail."""
        await self._ensure_loaded()
        self._owned(user_id)
        async with self._slot:
            chat = self._owned(user_id)
            if chat.status is ChatStatus.ENDED:
                return chat
            try:
                version = await self._store.write(self.chat_id, chat.version, status=ChatStatus.ENDED)
            except StaleState as exc:
                self._forget_if_stale(exc)
                raise
            self.chat = replace(chat, version=version, status=ChatStatus.ENDED)
            return self.chat

    async def delete(self, user_id: str) -> None:
        """Delete the chat and all its messages (after any running turn)."""
        await self._ensure_loaded()
        self._owned(user_id)
        async with self._slot:
            self._owned(user_id)
            await self._store.delete_chat(self.chat_id)
            self._set_state(None, [])
