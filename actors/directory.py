"""The directory: one detached actor keeping live conversation actors under a cap, LRU passivation."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.liveset import LiveSet
from actors.names import actor_name
from store.errors import Passivating, ResourceExhausted

log = logging.getLogger("chatservice.directory")
TRIES_PER_ROUND = 16  # idle chats are found among the least recently used ones
POLL_SECONDS = 0.25
PASSIVATE_TIMEOUT_SECONDS = 5.0
NODES_REFRESH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DirectoryConfig:
    """Where the directory lives, the cap on live conversation actors per Ray node, and how long an
    activation may wait for room."""

    namespace: str
    name: str
    cap_per_node: int = 1000
    wait_seconds: float = 10.0
    # A chat used this recently is not passivated to make room: it may not have had its first call.
    evict_grace_seconds: float = 2.0


# Restarted if it dies, and calls to it retried meanwhile: admit, touch and release are idempotent.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ChatDirectory:
    """Admits activations while there is room; at the cap, passivates least recently used idle chats.

    Gateways report use in batches (`touch`); actors report their own passivation (`release`).
    A chat whose actor died unseen is found out when it is chosen for passivation.
    """

    def __init__(self, config: DirectoryConfig) -> None:
        self._config = config
        self._live = LiveSet(config.cap_per_node)
        self._evicting: set[str] = set()
        self._freed = asyncio.Event()
        self._nodes_checked = -NODES_REFRESH_SECONDS

    async def admit(self, chat_id: str) -> int:
        """Return once `chat_id` may be live (the live count then); ResourceExhausted after the wait."""
        await self._refresh_cap()
        deadline = time.monotonic() + self._config.wait_seconds
        while chat_id not in self._live and self._live.full:
            if await self._evict_one():
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResourceExhausted(
                    f"all {self._live.cap} live conversations are busy; retry in a few seconds"
                )
            self._freed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), min(POLL_SECONDS, left))
        self._live.add(chat_id, time.monotonic())
        return len(self._live)

    def touch(self, chat_ids: list[str]) -> None:
        """These chats were used just now (batched by each gateway)."""
        self._live.touch(chat_ids, time.monotonic())

    def release(self, chat_id: str) -> None:
        """The chat's actor passivated itself; its place is free."""
        if self._live.remove(chat_id):
            self._freed.set()

    def live_chats(self) -> list[str]:
        """Live chats, least recently used first."""
        return self._live.candidates(time.monotonic(), grace=0.0)

    def cap(self) -> int:
        return self._live.cap

    async def passivate_all(self) -> int:
        """Passivate every idle live chat (at shutdown); returns how many went."""
        chats = self.live_chats()
        gone = await asyncio.gather(*(self._passivate(c) for c in chats))
        for chat_id, went in zip(chats, gone, strict=True):
            if went:
                self._live.remove(chat_id)
        return sum(gone)

    async def _evict_one(self) -> bool:
        now = time.monotonic()
        tried = 0
        for chat_id in self._live.candidates(now, self._config.evict_grace_seconds):
            if chat_id in self._evicting:
                continue
            if tried == TRIES_PER_ROUND:
                break
            tried += 1
            self._evicting.add(chat_id)
            try:
                gone = await self._passivate(chat_id)
            finally:
                self._evicting.discard(chat_id)
            if gone:
                # The actor may have released itself already: either way its place is free.
                self._live.remove(chat_id)
                log.info("passivated chat %s to make room", chat_id)
                return True
        return False

    async def _passivate(self, chat_id: str) -> bool:
        """Ask the chat's actor to passivate: True once it is gone or going, False if busy."""
        try:
            name = actor_name(chat_id)
            handle = await asyncio.to_thread(ray.get_actor, name, self._config.namespace)
        except ValueError:
            return True  # no such actor: it died, or its activation never happened
        try:
            return bool(await asyncio.wait_for(handle.passivate.remote(), PASSIVATE_TIMEOUT_SECONDS))
        except RayActorError:
            return True
        except RayTaskError as exc:
            return isinstance(exc.cause, Passivating)
        except TimeoutError:
            return False

    async def _refresh_cap(self) -> None:
        """The cap is per node: follow the number of live Ray nodes."""
        now = time.monotonic()
        if now - self._nodes_checked < NODES_REFRESH_SECONDS:
            return
        self._nodes_checked = now
        nodes = await asyncio.to_thread(ray.nodes)
        alive = sum(1 for n in nodes if n.get("Alive"))
        self._live.cap = self._config.cap_per_node * max(1, alive)
