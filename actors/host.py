"""The Ray actor `host:<n>` (the hosted placement): a thin shell serving many conversations in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
from dataclasses import dataclass
from typing import Any

import ray

from actors import metrics
from actors.actor import GATEWAY_ONLY
from actors.inprocess import LocalConfig, LocalConversations
from actors.names import NAMESPACE
from actors.remote import PORT_CALLS
from store import DatabaseURL, open_store
from store.errors import InvalidArgument

log = logging.getLogger("chatservice.host")
# A call waiting for its chat's turn slot holds one of these; a host serves thousands of chats.
HOST_CONCURRENCY = 10_000


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What every host needs; the first gateway of a deployment creates the hosts with it."""

    database: DatabaseURL
    pool_size: int  # the host's database connections, shared by all its conversations
    conversations: LocalConfig  # turn rules, and how many idle chats stay loaded (the LRU cap)
    idle_seconds: float  # a conversation idle this long is dropped (its chat lives on in the store)
    hosts: int  # how many hosts the deployment has: every gateway routes over this many
    namespace: str = NAMESPACE


# Restarted when it dies (killed, OOM, node lost): its chats load again from the store on the next
# call, which the router retries; Ray does not retry calls itself, the turn protocol's ids do.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=HOST_CONCURRENCY)  # type: ignore[call-overload]
class ConversationHost:
    """Conversations as objects (LocalConversations) behind one Ray actor and one database pool.

    Each chat runs the same Conversation code as a conversation actor does, one turn at a time;
    a chat idle for `idle_seconds`, or the least recently used idle one beyond the cap, is dropped.
    """

    def __init__(self, index: int, config: HostConfig) -> None:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._index = index
        self._config = config
        self._store = open_store(config.database, pool_size=config.pool_size)
        self._conversations = LocalConversations(self._store, config.conversations)
        self._sweeper: asyncio.Task[None] | None = None

    async def call(self, method: str, chat_id: str, *args: Any) -> Any:
        """One port call (actors/port.py) for one chat."""
        if method not in PORT_CALLS:
            raise InvalidArgument(f"a conversation has no call {method!r}")
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return await getattr(self._conversations, method)(chat_id, *args)

    async def _sweep(self) -> None:
        every = min(30.0, max(0.25, self._config.idle_seconds / 4))
        while True:
            await asyncio.sleep(every)
            self._conversations.drop_idle(self._config.idle_seconds)
            metrics.set_host_live(self._index, self._conversations.loaded)

    def count(self) -> int:
        """How many hosts the deployment has (every gateway asks host 0 once, at start)."""
        return self._config.hosts

    def holds(self, chat_id: str) -> bool:
        """Whether the chat is live here (an operator's question: which host holds this chat)."""
        return self._conversations.holds(chat_id)

    def stats(self) -> dict[str, Any]:
        """This host's live chats and footprint, for operators and the benchmark."""
        return {
            "host": self._index,
            "live": self._conversations.loaded,
            "pid": os.getpid(),
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "gateway_modules": sorted(m for m in GATEWAY_ONLY if m in sys.modules),
        }

    async def passivate_all(self) -> int:
        """Let running calls finish and drop every idle chat (the deployment stops); how many went."""
        await self._conversations.close()
        return self._conversations.drop_idle(0.0, "shutdown")

    def __repr__(self) -> str:
        # Ray shows this in the dashboard and prefixes this host's log lines with it.
        return f"ConversationHost({getattr(self, '_index', '?')})"


def host_name(index: int) -> str:
    return f"host:{index}"
