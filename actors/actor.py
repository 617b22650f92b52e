"""The Ray actor `chat:<chat_id>`: a thin shell that activates, serves and passivates a Conversation."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import ray

from actors import metrics
from actors.conversation import Conversation
from actors.measured_store import MeasuredStore
from actors.names import NAMESPACE
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store import DatabaseURL, open_store
from store.errors import Passivating
from store.records import ChatRecord, MessageRecord

# Libraries that belong in gateways only (DESIGN.md): an actor that loads them costs ~130 MB more.
GATEWAY_ONLY = ("tiktoken", "openai", "grpc", "twilio")
T = TypeVar("T")
log = logging.getLogger("chatservice.actor")
# A new activation waits this long for the call it was made for before it may be passivated.
FIRST_CALL_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """What every conversation actor needs; passed at creation, identical for all of them."""

    database: DatabaseURL
    turn_timeout: float
    idle_seconds: float
    turns_per_minute: int = 0
    namespace: str = NAMESPACE  # the deployment's Ray namespace: its actors and directory live there
    directory: str = "directory"
    evict_to: float = 1.0  # EVICT_TO of the deployment (1.0, the window rule's own default, evicts least)


@ray.remote(num_cpus=0, max_restarts=0)
class ConversationActor:
    """One conversation. Holds at most one database connection, opened on first use.

    Passivation (idle, or to make room) is the directory's to run: it asks `passivate`, which
    closes the connection and refuses further calls with Passivating (the router re-activates
    elsewhere), then ends the process.
    """

    def __init__(self, chat_id: str, config: ActorConfig) -> None:
        # Warnings (store failures) go to this actor's log, shown with it in the Ray dashboard.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._config = config
        self._store = MeasuredStore(open_store(config.database, pool_size=1), chat_id)
        self._conversation = Conversation(
            chat_id,
            self._store,
            config.turn_timeout,
            config.turns_per_minute,
            on_free=self._arm_idle_timer,
            on_activated=metrics.activated,
            evict_to=config.evict_to,
        )
        self._calls = 0
        self._served = 0
        self._born = time.monotonic()
        self._passivating = False
        self._idle_timer: asyncio.TimerHandle | None = None

    async def _serve(self, work: Awaitable[T]) -> T:
        if self._passivating:
            close = getattr(work, "close", None)
            if close is not None:
                close()  # never awaited: say so to the coroutine, not to the log
            raise Passivating("this conversation is passivating; the call is retried on a new activation")
        self._calls += 1
        self._served += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        try:
            return await work
        finally:
            self._calls -= 1
            self._arm_idle_timer()

    @property
    def _idle(self) -> bool:
        return self._calls == 0 and not self._conversation.busy and not self._passivating

    def _arm_idle_timer(self) -> None:
        if self._idle:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self._config.idle_seconds, self._on_idle)

    def _on_idle(self) -> None:
        if self._idle:
            asyncio.get_running_loop().create_task(self._ask_to_passivate())

    async def _ask_to_passivate(self) -> None:
        try:
            directory = await asyncio.to_thread(ray.get_actor, self._config.directory, self._config.namespace)
        except ValueError:
            return  # no directory: this actor was made without a router, and lives on
        directory.passivate.remote(self._conversation.chat_id)

    async def passivate(self, reason: str = "idle") -> bool:
        """Prepare to end if idle: True if this activation is over, False if it is busy.

        `reason`: idle (CHAT_IDLE_SECONDS passed), room (the live cap), or shutdown.
        """
        if self._passivating:
            return True
        new = not self._served and time.monotonic() - self._born < FIRST_CALL_GRACE_SECONDS
        if not self._idle or new:
            return False
        self._passivating = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        await self._store.close()
        log.info("passivating chat %s (%s)", self._conversation.chat_id, reason)
        metrics.passivated(reason)
        return True

    def __repr__(self) -> str:
        # Ray shows this in the dashboard and prefixes this actor's log lines with it.
        conversation = getattr(self, "_conversation", None)
        return f"Conversation({conversation.chat_id if conversation else '?'})"

    async def begin_turn(self, req: TurnRequest) -> TurnPlan | Recount:
        return await self._serve(self._conversation.begin_turn(req))

    async def complete_turn(
        self,
        turn_id: str,
        reply: str,
        tokens: int,
        finish: str,
        server_prompt_tokens: int | None = None,
        user_message_id: int | None = None,
    ) -> TurnResult:
        return await self._serve(
            self._conversation.complete_turn(
                turn_id, reply, tokens, finish, server_prompt_tokens, user_message_id
            )
        )

    async def shrink_turn(
        self, turn_id: str, target_tokens: int, user_message_id: int | None = None
    ) -> TurnPlan:
        return await self._serve(self._conversation.shrink_turn(turn_id, target_tokens, user_message_id))

    async def abort_turn(
        self, turn_id: str, partial: str, tokens: int, reason: str, user_message_id: int | None = None
    ) -> TurnResult:
        return await self._serve(
            self._conversation.abort_turn(turn_id, partial, tokens, reason, user_message_id)
        )

    async def renew_turn(self, turn_id: str, user_message_id: int | None = None) -> None:
        return await self._serve(self._conversation.renew_turn(turn_id, user_message_id))

    async def withdraw_turn(self, turn_id: str) -> None:
        return await self._serve(self._conversation.withdraw_turn(turn_id))

    async def create(self, user_id: str, new: NewChat) -> ChatRecord:
        return await self._serve(self._conversation.create(user_id, new))

    async def describe(self, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        return await self._serve(self._conversation.describe(user_id))

    async def end(self, user_id: str) -> ChatRecord:
        return await self._serve(self._conversation.end(user_id))

    async def switch(self, user_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        return await self._serve(self._conversation.switch(user_id, message_id))

    async def rename(self, user_id: str, title: str, if_title: str | None = None) -> ChatRecord:
        return await self._serve(self._conversation.rename(user_id, title, if_title))

    async def delete(self, user_id: str) -> None:
        return await self._serve(self._conversation.delete(user_id))

    async def window_messages(self) -> list[MessageRecord]:
        """The messages the model sees (tests compare it with a rebuild from the store)."""
        return await self._serve(self._conversation.snapshot())

    async def stats(self) -> dict[str, object]:
        """This actor's footprint, for operators and the benchmark."""
        return {
            "chat_id": self._conversation.chat_id,
            "pid": os.getpid(),
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "gateway_modules": sorted(m for m in GATEWAY_ONLY if m in sys.modules),
        }
