"""A ChatStore decorator for conversation actors: times writes and counts and logs failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from actors import metrics
from store.base import ChatCursor, ChatStore
from store.errors import ChatServiceError, StaleState, Unavailable
from store.records import ChatRecord, ChatStatus, MessageRecord

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
            log.error("chat %s: store %s failed unexpectedly: %r", self._chat_id, op, exc)

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

    async def write(
        self,
        chat_id: str,
        expected_version: int,
        *,
        append: Sequence[MessageRecord] = (),
        erase: Sequence[int] = (),
        title: str | None = None,
        status: ChatStatus | None = None,
        remove: Sequence[int] = (),
        reset_title: bool = False,
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
                remove=remove,
                reset_title=reset_title,
            ),
            write=True,
        )

    async def delete_chat(self, chat_id: str) -> bool:
        return await self._call("delete_chat", lambda: self._inner.delete_chat(chat_id), write=True)

    async def claim_event(self, event_id: str, source: str) -> bool:
        return await self._call("claim_event", lambda: self._inner.claim_event(event_id, source), write=True)
