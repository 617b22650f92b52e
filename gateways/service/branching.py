"""The branch use cases both gateways call: regenerate, edit, switch, rename, a path's messages, search."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from actors.branches import MAX_SEQ, renamed_title
from actors.protocol import Edit, Regenerate, WindowInfo
from gateways.service import paging
from gateways.service.chats import ChatService
from gateways.service.events import TurnEvent
from gateways.service.ids import check_chat_id, check_user_id
from store.base import ChatCursor, ChatStore
from store.errors import InvalidArgument, NotFound
from store.records import ChatRecord, MessageRecord, Role, SearchHit


@dataclass(frozen=True, slots=True)
class Siblings:
    """The messages sharing a message's parent (itself included), in creation order."""

    ids: tuple[int, ...]
    position: int  # 1-based

    @property
    def count(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class PathPage:
    """A page of a path's messages, each with its siblings, and the next page's token ('' at the end)."""

    messages: list[MessageRecord]
    siblings: dict[int, Siblings]
    next_page_token: str


class Branching:
    """Turns on other branches and the reads and writes of the tree, over a ChatService."""

    def __init__(self, service: ChatService, store: ChatStore) -> None:
        self._service = service
        self._store = store  # reads only: every write goes through the chat's actor

    async def regenerate(
        self, user_id: str, chat_id: str, message_id: int
    ) -> AsyncGenerator[TurnEvent, None]:
        """A new answer beside answer `message_id`, streamed like any turn (queued behind a running one)."""
        message = await self._message(user_id, chat_id, message_id)
        if message.role is not Role.ASSISTANT:
            raise InvalidArgument(f"message {message_id} is not an answer: only answers can be regenerated")
        turn = self._service.turn(user_id, chat_id, "", create_missing=False, branch=Regenerate(message_id))
        async with aclosing(turn) as events:
            async for event in events:
                yield event

    def edit(
        self, user_id: str, chat_id: str, message_id: int, content: str
    ) -> AsyncGenerator[TurnEvent, None]:
        """`content` as a new user message beside user message `message_id`, then its answer."""
        checked_id(message_id)
        return self._service.turn(user_id, chat_id, content, create_missing=False, branch=Edit(message_id))

    async def switch(self, user_id: str, chat_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        """Make the active path run through `message_id`, down to the leaf under it."""
        await self._service.owners.check(check_user_id(user_id), check_chat_id(chat_id))
        await self._service.conversations.switch(chat_id, user_id, checked_id(message_id))
        return await self._service.get_chat(user_id, chat_id)

    async def rename(self, user_id: str, chat_id: str, title: str) -> tuple[ChatRecord, WindowInfo]:
        if not isinstance(title, str) or not renamed_title(title):
            raise InvalidArgument("title is empty: send some text")
        await self._service.owners.check(check_user_id(user_id), check_chat_id(chat_id))
        await self._service.conversations.rename(chat_id, user_id, title)
        return await self._service.get_chat(user_id, chat_id)

    async def path(
        self,
        user_id: str,
        chat_id: str,
        *,
        leaf: int | None = None,
        include_erased: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> PathPage:
        """A page of the messages from the root to the leaf under `leaf` (None: the active path)."""
        # A read that bypasses the actor: the owner is checked here, always.
        await self._service.owners.check(check_user_id(user_id), check_chat_id(chat_id), trust_cache=False)
        size = paging.page_size(page_size, default=100, most=1000)
        after = paging.message_cursor(page_token)
        end = None if leaf is None else await self._store.leaf_under(chat_id, checked_id(leaf))
        messages = await self._store.list_path(
            chat_id, leaf=end, include_erased=include_erased, after_seq=after, limit=size + 1
        )
        token = ""
        if len(messages) > size:
            messages, token = messages[:size], paging.message_token(messages[size - 1].seq)
        found = await self._store.siblings(chat_id, [m.seq for m in messages]) if messages else {}
        shown = {seq: Siblings(ids, ids.index(seq) + 1) for seq, ids in found.items()}
        return PathPage(messages, shown, token)

    async def search(
        self, user_id: str, query: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[SearchHit], str]:
        """A page of the user's chats whose title or messages hold every word of `query`, newest first."""
        size = paging.page_size(page_size, default=20, most=100)
        cursor = paging.chat_cursor(page_token)
        hits = await self._store.search_chats(check_user_id(user_id), query, size + 1, cursor)
        if len(hits) <= size:
            return hits, ""
        last = hits[size - 1].chat
        return hits[:size], paging.chat_token(ChatCursor(last.created_at, last.id))

    async def _message(self, user_id: str, chat_id: str, message_id: int) -> MessageRecord:
        await self._service.owners.check(check_user_id(user_id), check_chat_id(chat_id), trust_cache=False)
        seq = checked_id(message_id)
        rows = await self._store.list_path(chat_id, leaf=seq, include_erased=True, after_seq=seq - 1)
        return rows[0]


def checked_id(message_id: int) -> int:
    """A message id as given: InvalidArgument if it is no whole number, NotFound if none can have it."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise InvalidArgument(f"message_id is a whole number, not {type(message_id).__name__}")
    if not 0 < message_id <= MAX_SEQ:
        raise NotFound(f"there is no message {message_id}")
    return message_id


def parsed_id(raw: str, name: str = "message_id") -> int:
    """A message id from a URL: InvalidArgument unless it is a whole number."""
    text = raw.strip()
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 20:
        raise InvalidArgument(f"{name} must be a whole number, got {raw[:40]!r}")
    return checked_id(int(text))
