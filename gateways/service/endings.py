"""How a turn ends on the Conversations port: completed, aborted or withdrawn, through store outages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from actors.port import Conversations
from actors.protocol import Recount, TurnPlan, TurnResult
from gateways.llm.client import Finish
from gateways.llm.counting import TokenCounter
from gateways.service.leases import Leases
from store.errors import ChatServiceError, StaleState, Unavailable

T = TypeVar("T")
log = logging.getLogger("chatservice.service")
# How long the end of a turn is retried while the store is unreachable, before giving up.
STORE_RETRY_SECONDS = 10.0


class TurnEndings:
    """The last writes of turns, and the background tasks that run them after their client left."""

    def __init__(self, conversations: Conversations, counter: TokenCounter, leases: Leases) -> None:
        self._conversations = conversations
        self._counter = counter
        self._leases = leases
        self._background: set[asyncio.Task[object]] = set()

    async def complete(
        self, chat_id: str, plan: TurnPlan, reply: str, finish: Finish
    ) -> tuple[TurnResult, int]:
        tokens = await self._counter.message(plan.params.model, "assistant", reply)
        try:
            result = await while_store_returns(
                lambda: self._conversations.complete_turn(
                    chat_id,
                    plan.turn_id,
                    reply,
                    tokens,
                    finish.reason,
                    finish.prompt_tokens or None,
                    plan.user_message_id,
                )
            )
            return result, tokens
        except Unavailable:
            # Give the chat back (nothing more is written) rather than hold it for the lease.
            self.spawn(self.abort(chat_id, plan, "", "error"))
            raise
        finally:
            self._leases.release(plan.turn_id)

    async def abort(self, chat_id: str, plan: TurnPlan, partial: str, reason: str) -> None:
        tokens = await self._counter.message(plan.params.model, "assistant", partial) if partial else 0
        try:
            await while_store_returns(
                lambda: self._conversations.abort_turn(
                    chat_id, plan.turn_id, partial, tokens, reason, plan.user_message_id
                )
            )
        except ChatServiceError as exc:
            # The turn lease frees the chat anyway; the client already has its error.
            log.warning("chat %s: could not abort turn %s: %s", chat_id, plan.turn_id, exc.code)
        finally:
            self._leases.release(plan.turn_id)

    async def withdraw(self, chat_id: str, turn_id: str, call: asyncio.Future[TurnPlan | Recount]) -> None:
        """Store nothing of a turn whose client left before it began: the actor drops it."""
        withdraw = partial(self._conversations.withdraw_turn, chat_id, turn_id)
        try:
            await while_store_returns(withdraw)
            try:
                begun = isinstance(await call, TurnPlan)
            except ChatServiceError:
                return  # refused as withdrawn (or failed): nothing of it is stored
            if begun:  # it began before the withdraw reached it (on a new activation): undo it
                await while_store_returns(withdraw)
        except ChatServiceError as exc:
            log.warning("chat %s: could not withdraw turn %s: %s", chat_id, turn_id, exc)

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def unless_cancelled(self, work: Coroutine[Any, Any, T]) -> T:
        """Await `work`, which runs to its end even if the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: never "unhandled"
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for background aborts (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def while_store_returns(call: Callable[[], Awaitable[T]]) -> T:
    """Retry a turn's last write while the store is unreachable, for up to STORE_RETRY_SECONDS."""
    deadline = time.monotonic() + STORE_RETRY_SECONDS
    delay = 0.25
    while True:
        try:
            return await call()
        except StaleState:
            raise
        except Unavailable:
            if time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
