"""The Conversations port in this process: a dictionary of Conversation objects over one store, no Ray."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from actors import metrics
from actors.conversation import Conversation
from actors.measured_store import MeasuredStore
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store.base import ChatStore
from store.errors import ChatServiceError, Unavailable
from store.records import ChatRecord, MessageRecord

T = TypeVar("T")
log = logging.getLogger("chatservice.inprocess")


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """What each conversation needs (as ActorConfig gives an actor), and how many stay loaded."""

    turn_timeout: float
    turns_per_minute: int = 0
    evict_to: float = 1.0
    loaded: int = 10_000  # idle conversations beyond this are dropped, least recently used first
    measured: bool = False  # store timings, failures and activations as metrics, each with its chat id


class _Loaded:
    """A conversation and the calls it is serving (one with calls or a turn is never dropped)."""

    __slots__ = ("calls", "conversation", "used")

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.calls = 0
        self.used = time.monotonic()

    @property
    def idle(self) -> bool:
        return not self.calls and not self.conversation.busy


class LocalConversations:
    """Every chat's Conversation in this process, each loaded on first use from the shared store.

    As on Ray, a call runs to its end even if its caller is cancelled (a Ray call, once sent,
    does), turns queue in the chat's own slot, and an unexpected error reaches the caller as
    Unavailable. For one process (tests, a single-node deployment); no other process may write
    the same chats, as each Conversation trusts what it loaded.
    """

    def __init__(self, store: ChatStore, config: LocalConfig) -> None:
        self._store = store
        self._config = config
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._running: set[asyncio.Task[object]] = set()

    def _get(self, chat_id: str) -> _Loaded:
        loaded = self._loaded.get(chat_id)
        if loaded is None:
            c = self._config
            store = MeasuredStore(self._store, chat_id) if c.measured else self._store
            conversation = Conversation(
                chat_id,
                store,
                c.turn_timeout,
                c.turns_per_minute,
                on_activated=metrics.activated if c.measured else lambda seconds: None,
                evict_to=c.evict_to,
            )
            loaded = self._loaded[chat_id] = _Loaded(conversation)
        self._loaded.move_to_end(chat_id)
        loaded.used = time.monotonic()
        return loaded

    def _trim(self) -> None:
        excess = len(self._loaded) - self._config.loaded
        if excess <= 0:
            return
        self._drop(list(itertools.islice((k for k, v in self._loaded.items() if v.idle), excess)), "room")

    def drop_idle(self, seconds: float, reason: str = "idle") -> int:
        """Drop the conversations idle for `seconds` or more (their chats live on in the store)."""
        since = time.monotonic() - seconds
        return self._drop([k for k, v in self._loaded.items() if v.idle and v.used <= since], reason)

    def _drop(self, chat_ids: list[str], reason: str) -> int:
        for chat_id in chat_ids:
            del self._loaded[chat_id]
        if self._config.measured:
            metrics.passivated(reason, len(chat_ids))
        return len(chat_ids)

    def holds(self, chat_id: str) -> bool:
        """Whether the chat's conversation is loaded here."""
        return chat_id in self._loaded

    async def _run(self, chat_id: str, call: Callable[[Conversation], Awaitable[T]]) -> T:
        loaded = self._get(chat_id)
        loaded.calls += 1

        async def served() -> T:
            try:
                return await call(loaded.conversation)
            except ChatServiceError:
                raise
            except Exception as exc:
                # The type only, as the router logs it: the message may quote the chat's text.
                log.error("a conversation call failed: %s", type(exc).__name__)
                raise Unavailable("the conversation failed unexpectedly; retry") from exc
            finally:
                loaded.calls -= 1
                loaded.used = time.monotonic()
                self._trim()

        task: asyncio.Task[T] = asyncio.ensure_future(served())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: never "unhandled"
        return await asyncio.shield(task)

    async def begin_turn(self, chat_id: str, req: TurnRequest) -> TurnPlan | Recount:
        return await self._run(chat_id, lambda c: c.begin_turn(req))

    async def complete_turn(
        self,
        chat_id: str,
        turn_id: str,
        reply: str,
        tokens: int,
        finish: str,
        server_prompt_tokens: int | None = None,
        user_message_id: int | None = None,
    ) -> TurnResult:
        return await self._run(
            chat_id,
            lambda c: c.complete_turn(turn_id, reply, tokens, finish, server_prompt_tokens, user_message_id),
        )

    async def abort_turn(
        self,
        chat_id: str,
        turn_id: str,
        partial: str,
        tokens: int,
        reason: str,
        user_message_id: int | None = None,
    ) -> TurnResult:
        return await self._run(
            chat_id, lambda c: c.abort_turn(turn_id, partial, tokens, reason, user_message_id)
        )

    async def shrink_turn(
        self, chat_id: str, turn_id: str, target_tokens: int, user_message_id: int | None = None
    ) -> TurnPlan:
        return await self._run(chat_id, lambda c: c.shrink_turn(turn_id, target_tokens, user_message_id))

    async def renew_turn(self, chat_id: str, turn_id: str, user_message_id: int | None = None) -> None:
        await self._run(chat_id, lambda c: c.renew_turn(turn_id, user_message_id))

    async def withdraw_turn(self, chat_id: str, turn_id: str) -> None:
        await self._run(chat_id, lambda c: c.withdraw_turn(turn_id))

    async def create(self, chat_id: str, user_id: str, new: NewChat) -> ChatRecord:
        return await self._run(chat_id, lambda c: c.create(user_id, new))

    async def describe(self, chat_id: str, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        return await self._run(chat_id, lambda c: c.describe(user_id))

    async def end(self, chat_id: str, user_id: str) -> ChatRecord:
        return await self._run(chat_id, lambda c: c.end(user_id))

    async def delete(self, chat_id: str, user_id: str) -> None:
        await self._run(chat_id, lambda c: c.delete(user_id))

    async def switch(self, chat_id: str, user_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        return await self._run(chat_id, lambda c: c.switch(user_id, message_id))

    async def rename(self, chat_id: str, user_id: str, title: str, if_title: str | None = None) -> ChatRecord:
        return await self._run(chat_id, lambda c: c.rename(user_id, title, if_title))

    async def window_messages(self, chat_id: str) -> list[MessageRecord]:
        return await self._run(chat_id, lambda c: c.snapshot())

    @property
    def loaded(self) -> int:
        """How many conversations this process holds now."""
        return len(self._loaded)

    async def close(self) -> None:
        """Let running calls finish (their writes are acknowledged only once stored)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
