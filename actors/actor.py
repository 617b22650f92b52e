"""The Ray actor `chat:<chat_id>`: a thin shell that activates, serves and passivates a Conversation."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import ray

from actors import metrics
from actors.conversation import Conversation
from actors.measured_store import MeasuredStore
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store import DatabaseURL, open_store
from store.records import ChatRecord, MessageRecord

NAMESPACE = "chatservice"
# Libraries that belong in gateways only (DESIGN.md): an actor that loads them costs ~130 MB more.
GATEWAY_ONLY = ("tiktoken", "openai", "grpc", "twilio")
T = TypeVar("T")
log = logging.getLogger("chatservice.actor")


def actor_name(chat_id: str) -> str:
    return f"chat:{chat_id}"


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """What every conversation actor needs; passed at creation, identical for all of them."""

    database: DatabaseURL
    turn_timeout: float
    idle_seconds: float


@ray.remote(num_cpus=0, max_restarts=0)
class ConversationActor:
    """One conversation. Holds at most one database connection, opened on first use."""

    def __init__(self, chat_id: str, config: ActorConfig) -> None:
        # Warnings (store failures) go to this actor's log, shown with it in the Ray dashboard.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._store = MeasuredStore(open_store(config.database, pool_size=1), chat_id)
        self._conversation = Conversation(chat_id, self._store, config.turn_timeout)
        self._idle_seconds = config.idle_seconds
        self._calls = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    async def _serve(self, work: Awaitable[T]) -> T:
        self._calls += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        try:
            return await work
        finally:
            self._calls -= 1
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        if self._calls == 0 and not self._conversation.busy:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self._idle_seconds, self._on_idle)

    def _on_idle(self) -> None:
        if self._calls == 0 and not self._conversation.busy:
            # exit_actor must run inside an actor task, so the actor asks itself to passivate.
            ray.get_runtime_context().current_actor.passivate.remote()

    async def passivate(self) -> bool:
        """Flush and exit if still idle; the next call to this chat activates a fresh actor."""
        if self._calls or self._conversation.busy:
            return False
        await self._store.close()
        log.info("passivating idle chat %s", self._conversation.chat_id)
        metrics.passivated("idle")
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]
        return True  # not reached: exit_actor raises

    def __repr__(self) -> str:
        # Ray shows this in the dashboard and prefixes this actor's log lines with it.
        conversation = getattr(self, "_conversation", None)
        return f"Conversation({conversation.chat_id if conversation else '?'})"

    async def begin_turn(self, req: TurnRequest) -> TurnPlan | Recount:
        return await self._serve(self._conversation.begin_turn(req))

    async def complete_turn(self, turn_id: str, reply: str, tokens: int, finish: str) -> TurnResult:
        return await self._serve(self._conversation.complete_turn(turn_id, reply, tokens, finish))

    async def abort_turn(self, turn_id: str, partial: str, tokens: int, reason: str) -> TurnResult:
        return await self._serve(self._conversation.abort_turn(turn_id, partial, tokens, reason))

    async def create(self, user_id: str, new: NewChat) -> ChatRecord:
        return await self._serve(self._conversation.create(user_id, new))

    async def describe(self, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        return await self._serve(self._conversation.describe(user_id))

    async def end(self, user_id: str) -> ChatRecord:
        return await self._serve(self._conversation.end(user_id))

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
