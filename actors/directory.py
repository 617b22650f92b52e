"""The directory: one detached actor that activates conversations and keeps them under a cap (LRU)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actors import metrics
from actors.actor import ActorConfig, ConversationActor
from actors.liveset import LiveSet
from actors.names import actor_name
from store.errors import Passivating, ResourceExhausted, Unavailable

log = logging.getLogger("chatservice.directory")
TRIES_PER_ROUND = 16  # idle chats are found among the least recently used ones
POLL_SECONDS = 0.25
PASSIVATE_TIMEOUT_SECONDS = 5.0
NODES_REFRESH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class DirectoryConfig:
    """Where conversation actors live, the cap on live ones per Ray node, and how long an activation
    may wait for room. The first gateway to start the directory sets these for the deployment."""

    namespace: str
    cap_per_node: int = 1000
    wait_seconds: float = 10.0
    # A chat used this recently is not passivated to make room: its first call may be on its way.
    evict_grace_seconds: float = 2.0


# Restarted if it dies, and calls to it retried meanwhile: admit, touch and passivate are idempotent.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ChatDirectory:
    """Activates conversation actors while there is room; at the cap, passivates the least recently
    used idle ones first. Every live conversation actor was made here, so the count is exact.

    Gateways report use in batches (`touch`); an actor idle for long asks to be passivated.
    A chat whose actor died unseen is found out when it is chosen for passivation.
    """

    def __init__(self, config: DirectoryConfig) -> None:
        self._config = config
        self._live = LiveSet(config.cap_per_node)
        self._handles: dict[str, Any] = {}
        # A lock (and how many hold or await it) per chat being activated or passivated: the two
        # never interleave for one chat.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._freed = asyncio.Event()
        self._nodes_checked = -NODES_REFRESH_SECONDS
        self._recovered = False

    async def _recover(self) -> None:
        """A restarted directory finds the conversation actors that are live: the count stays exact."""
        if self._recovered:
            return
        self._recovered = True
        named = await asyncio.to_thread(ray.util.list_named_actors, True)
        prefix = actor_name("")
        for actor in named:
            if actor["namespace"] == self._config.namespace and actor["name"].startswith(prefix):
                self._live.add(actor["name"].removeprefix(prefix), 0.0)  # least recently used
        metrics.set_live_conversations(len(self._live))

    async def admit(self, chat_id: str, config: ActorConfig, dead: str | None = None) -> Any:
        """The chat's actor, activated with `config` if need be; ResourceExhausted if no room comes.

        `dead` is the id of an activation the caller found dead: a new one replaces it.
        """
        await self._recover()
        await self._refresh_cap()
        async with self._exclusive(chat_id):
            await self._make_room(chat_id)
            self._live.add(chat_id, time.monotonic())
            metrics.set_live_conversations(len(self._live))
            handle = self._handles.get(chat_id)
            if handle is None or actor_id(handle) == dead:
                handle = await self._activate(chat_id, config, dead)
        return handle

    async def _make_room(self, chat_id: str) -> None:
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

    async def _activate(self, chat_id: str, config: ActorConfig, dead: str | None) -> Any:
        name = actor_name(chat_id)
        deadline = time.monotonic() + PASSIVATE_TIMEOUT_SECONDS * 2
        while True:
            handle = await asyncio.to_thread(_get_or_create, chat_id, config)
            if actor_id(handle) != dead:
                self._handles[chat_id] = handle
                return handle
            if time.monotonic() > deadline:
                self._forget(chat_id)
                raise Unavailable(f"the conversation's old actor ({name}) is slow to go; retry shortly")
            await asyncio.sleep(0.05)  # a dead activation holds its name for a moment

    def touch(self, chat_ids: list[str]) -> None:
        """These chats were used just now (batched by each gateway)."""
        self._live.touch(chat_ids, time.monotonic())

    async def passivate(self, chat_id: str) -> bool:
        """End the chat's activation if it is idle (asked by the actor when it has been idle long)."""
        return await self._try_passivate(chat_id, "idle")

    def live_chats(self) -> list[str]:
        """Live chats, least recently used first."""
        return self._live.candidates(time.monotonic(), grace=0.0)

    async def passivate_all(self) -> int:
        """Passivate every idle live chat (at shutdown); returns how many went."""
        gone = await asyncio.gather(*(self._try_passivate(c, "shutdown") for c in self.live_chats()))
        return sum(gone)

    async def _evict_one(self) -> bool:
        candidates = self._live.candidates(time.monotonic(), self._config.evict_grace_seconds)
        for chat_id in candidates[:TRIES_PER_ROUND]:
            if await self._try_passivate(chat_id, "room"):
                log.info("passivated chat %s to make room", chat_id)
                return True
        return False

    async def _try_passivate(self, chat_id: str, reason: str) -> bool:
        """Passivate the chat unless it is being activated or passivated already (then False)."""
        if chat_id in self._locks:
            return False
        async with self._exclusive(chat_id):  # free, so taken at once
            gone = await self._passivate(chat_id, reason)
            if gone:
                self._forget(chat_id)
        return gone

    @asynccontextmanager
    async def _exclusive(self, chat_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id) or (asyncio.Lock(), 0)
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users == 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)

    def _forget(self, chat_id: str) -> None:
        self._handles.pop(chat_id, None)
        if self._live.remove(chat_id):
            self._freed.set()
            metrics.set_live_conversations(len(self._live))

    async def _passivate(self, chat_id: str, reason: str) -> bool:
        """Ask the chat's actor to passivate, then end it: True once it is gone, False if busy."""
        name = actor_name(chat_id)
        handle: Any = self._handles.get(chat_id)
        if handle is None:
            try:
                handle = await asyncio.to_thread(ray.get_actor, name, self._config.namespace)
            except ValueError:
                return True  # no actor by that name: nothing is running
        try:
            asked = handle.passivate.remote(reason)
            going = bool(await asyncio.wait_for(asked, PASSIVATE_TIMEOUT_SECONDS))
        except ActorDiedError:
            going = True  # it died on its own; killing it again is harmless and frees the name
        except RayTaskError as exc:
            going = isinstance(exc.cause, Passivating)
        except (ActorUnavailableError, TimeoutError):
            return False  # alive but out of reach for now (a busy node): try another
        if not going:
            return False
        # Its connection is closed and it refuses calls: nothing is lost by ending it now,
        # and a process left to exit by itself lingers for seconds on a busy node.
        ray.kill(handle, no_restart=True)
        # Until Ray lets go of the name the actor still counts as live, so the cap stays exact;
        # a later round finds it dead and frees it then.
        return await self._until_gone(name)

    async def _until_gone(self, name: str) -> bool:
        """Wait (briefly) until Ray has let go of the name, so a new activation gets a new actor."""
        deadline = time.monotonic() + PASSIVATE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                await asyncio.to_thread(ray.get_actor, name, self._config.namespace)
            except ValueError:
                return True
            await asyncio.sleep(0.02)
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


def _get_or_create(chat_id: str, config: ActorConfig) -> Any:
    return ConversationActor.options(  # type: ignore[attr-defined]
        name=actor_name(chat_id),
        namespace=config.namespace,
        get_if_exists=True,
        lifetime="detached",
        scheduling_strategy="SPREAD",  # conversations spread over the cluster's nodes
    ).remote(chat_id, config)


def actor_id(handle: Any) -> str:
    # Handles expose no public id; _actor_id is what Ray itself compares them by.
    return str(handle._actor_id.hex())
