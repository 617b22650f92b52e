"""A ChatStore decorator for conversation actors: times writes and counts and logs failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from actors import metrics
from store.base import ChatCursor, ChatStore
from store.errors import ChatServiceError, StaleState, Unavailable
from store.records import ChatRecord, ChatStatus, MessageRecord, SearchHit

T = TypeVar("T")
log = logging.getLogger("chatservice.store")


class MeasuredStore:
    """Delegates every call to `inner`; results and errors pass through unchanged."""

    def __init__(self, inner: ChatStore, chat_id: str) -> None:
        self._inner = inner
        self._chat_id = chat_id

    async def _call(self, op: str, call: Callable[[], Awaitable[T]], *, write: bool) -> T:
        started = time.monotonic()
        try:
            result = await call()
        except Exception as exc:
            self._failed(op, exc)
            raise
        if write:
            metrics.store_write(op, time.monotonic() - started)
        return result

    def _failed(self, op: str, exc: Exception) -> None:
        kind = exc.code if isinstance(exc, ChatServiceError) else type(exc).__name__
        metrics.store_error(op, kind)
        # A stale write or a taken id is the protocol at work; anything else is worth a look.
        if isinstance(exc, Unavailable) and not isinstance(exc, StaleState):
            log.warning("chat %s: store %s failed: %s", self._chat_id, op, exc)
        elif not isinstance(exc, ChatServiceError):
            # The type and a driver's error number only: a driver's message may quote stored text.
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else ""
            log.error(
                "chat %s: store %s failed unexpectedly: %s %s", self._chat_id, op, type(exc).__name__, code
            )

    async def ping(self) -> None:
        await self._call("ping", self._inner.ping, write=False)

    async def close(self) -> None:
        await self._inner.close()

    async def max_connections(self) -> int | None:
        return await self._inner.max_connections()

    async def create_chat(self, chat: ChatRecord, messages: Sequence[MessageRecord]) -> None:
        await self._call("create_chat", lambda: self._inner.create_chat(chat, messages), write=True)

    async def get_chat(self, chat_id: str) -> ChatRecord | None:
        return await self._call("get_chat", lambda: self._inner.get_chat(chat_id), write=False)

    async def list_chats(self, user_id: str, limit: int, after: ChatCursor | None = None) -> list[ChatRecord]:
        chats = self._call("list_chats", lambda: self._inner.list_chats(user_id, limit, after), write=False)
        return await chats

    async def list_messages(
        self, chat_id: str, *, include_erased: bool = False, after_seq: int = 0, limit: int | None = None
    ) -> list[MessageRecord]:
        return await self._call(
            "list_messages",
            lambda: self._inner.list_messages(
                chat_id, include_erased=include_erased, after_seq=after_seq, limit=limit
            ),
            write=False,
        )

    async def list_path(
        self,
        chat_id: str,
        *,
        leaf: int | None = None,
        include_erased: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        return await self._call(
            "list_path",
            lambda: self._inner.list_path(
                chat_id, leaf=leaf, include_erased=include_erased, after_seq=after_seq, limit=limit
            ),
            write=False,
        )

    async def siblings(self, chat_id: str, seqs: Sequence[int]) -> dict[int, tuple[int, ...]]:
        return await self._call("siblings", lambda: self._inner.siblings(chat_id, seqs), write=False)

    async def leaf_under(self, chat_id: str, seq: int) -> int:
        return await self._call("leaf_under", lambda: self._inner.leaf_under(chat_id, seq), write=False)

    async def last_seq(self, chat_id: str) -> int:
        return await self._call("last_seq", lambda: self._inner.last_seq(chat_id), write=False)

    async def search_chats(
        self, user_id: str, query: str, limit: int, after: ChatCursor | None = None
    ) -> list[SearchHit]:
        return await self._call(
            "search_chats", lambda: self._inner.search_chats(user_id, query, limit, after), write=False
        )

    async def write(
        self,
        chat_id: str,
        expected_version: int,
        *,
        append: Sequence[MessageRecord] = (),
        erase: Sequence[int] = (),
        title: str | None = None,
        status: ChatStatus | None = None,
        active_leaf: int | None = None,
        rename: str | None = None,
        remove: Sequence[int] = (),
    ) -> int:
        return await self._call(
            "write",
            lambda: self._inner.write(
                chat_id,
                expected_version,
                append=append,
                erase=erase,
                title=title,
                status=status,
                active_leaf=active_leaf,
                rename=rename,
                remove=remove,
            ),
            write=True,
        )

    async def delete_chat(self, chat_id: str) -> bool:
        return await self._call("delete_chat", lambda: self._inner.delete_chat(chat_id), write=True)

    async def claim_event(self, event_id: str, source: str) -> bool:
        return await self._call("claim_event", lambda: self._inner.claim_event(event_id, source), write=True)
