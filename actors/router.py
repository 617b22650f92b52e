"""The Conversations port on Ray: chat_id -> actor, admitted by the directory, retried on death."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from typing import Any, cast

import ray

from actors.actor import ActorConfig
from actors.directory import ChatDirectory, DirectoryConfig, actor_id
from actors.remote import Gone, RemoteConversations, backoff, unwrap
from store.errors import Unavailable

log = logging.getLogger("chatservice.router")
TOUCH_SECONDS = 1.0  # how often use is reported to the directory, in one batch
STARTING_NOTICE_SECONDS = 2.0
STARTING = "chat %s: waiting for its conversation actor (a new one is a Ray worker process to start)..."


class ConversationRouter(RemoteConversations):
    """The Conversations port (actors/port.py) on Ray: calls go to `chat:<chat_id>` actors, from any node.

    A chat with no live actor is admitted by the directory first (which may passivate idle
    chats to stay under the cap). A call that reaches a dead or passivating actor, or finds the
    directory restarting, is retried against a fresh activation with backoff for up to
    `wait_seconds` after the first failure (at least once): the client sees latency, not an
    error. Turn ids make that safe (begin, complete, abort, renew and withdraw are idempotent).
    """

    def __init__(
        self,
        config: ActorConfig,
        cap_per_node: int = 1000,
        wait_seconds: float = 10.0,
        evict_grace_seconds: float = 2.0,
        cache_size: int = 10_000,
    ) -> None:
        self._config = config
        self._directory_config = DirectoryConfig(
            config.namespace, cap_per_node, wait_seconds, evict_grace_seconds
        )
        self._cache_size = cache_size
        self._wait_seconds = wait_seconds
        self._handles: OrderedDict[str, Any] = OrderedDict()
        self._directory: Any = None
        self._touched: dict[str, None] = {}  # in order of last use, oldest first
        self._flusher: asyncio.Task[None] | None = None

    @property
    def directory(self) -> Any:
        if self._directory is None:
            self._directory = ChatDirectory.options(  # type: ignore[attr-defined]
                name=self._config.directory,
                namespace=self._config.namespace,
                get_if_exists=True,
                lifetime="detached",
            ).remote(self._directory_config)
        return self._directory

    async def _handle(self, chat_id: str, dead: str | None = None) -> Any:
        handle = self._handles.get(chat_id)
        if handle is not None and dead is None:
            self._handles.move_to_end(chat_id)
            self._touch(chat_id)
            return handle
        try:
            handle = await unwrap(self.directory.admit.remote(chat_id, self._config, dead))
        except Gone:
            raise _Restarting("the chat directory is restarting; retry shortly") from None
        except Unavailable as exc:  # the directory could not activate it yet (an old actor lingers)
            raise _Restarting(str(exc)) from None
        self._handles[chat_id] = handle
        self._handles.move_to_end(chat_id)
        while len(self._handles) > self._cache_size:
            self._handles.popitem(last=False)
        return handle

    def _touch(self, chat_id: str) -> None:
        self._touched.pop(chat_id, None)
        self._touched[chat_id] = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_touches())

    async def _flush_touches(self) -> None:
        while self._touched:
            await asyncio.sleep(TOUCH_SECONDS)
            batch, self._touched = list(self._touched), {}
            self.directory.touch.remote(batch)  # fire and forget: only the LRU order depends on it

    async def _call(self, chat_id: str, method: str, *args: Any) -> Any:
        # Counted from the first failure: an attempt that was slow (activating on a busy node)
        # and then found its actor dead still gets the whole wait to recover.
        deadline: float | None = None
        dead: str | None = None
        for attempt in itertools.count(1):
            fresh = dead is not None or chat_id not in self._handles
            # A new activation's first call waits for its process: say so when that takes long.
            notice = (
                asyncio.get_running_loop().call_later(STARTING_NOTICE_SECONDS, log.info, STARTING, chat_id)
                if fresh
                else None
            )
            try:
                handle = await self._handle(chat_id, dead)
                dead = None
                return await unwrap(getattr(handle, method).remote(*args))
            except Gone as gone:
                if gone.dead:
                    self._handles.pop(chat_id, None)
                    dead = actor_id(handle)
                why, problem = str(gone), Unavailable("the conversation is restarting; retry shortly")
            except _Restarting as exc:
                why, problem = str(exc), Unavailable(str(exc))
            finally:
                if notice is not None:
                    notice.cancel()
            pause = backoff(attempt)
            deadline = deadline or time.monotonic() + self._wait_seconds
            if attempt > 1 and time.monotonic() + pause > deadline:
                log.warning("chat %s: %s failed %d times, last: %s", chat_id, method, attempt, why)
                raise problem
            log.info("chat %s: %s during %s, retrying (attempt %d)", chat_id, why, method, attempt)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # itertools.count never ends; mypy wants a return

    def forget(self, chat_id: str) -> None:
        self._handles.pop(chat_id, None)

    async def start(self) -> None:
        """Start the chat directory now, so the first chat does not wait for its process."""
        await self.live_chats()

    async def live_chats(self) -> list[str]:
        """Chats with a live actor, least recently used first (as the directory knows them)."""
        return cast(list[str], await self.directory.live_chats.remote())

    async def passivate_all(self) -> int:
        """Passivate every idle conversation actor (when the service that owns Ray shuts down)."""
        return cast(int, await self.directory.passivate_all.remote())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

    async def stats(self, chat_id: str) -> dict[str, object]:
        """The footprint of the chat's actor process (operators, the benchmark)."""
        return cast(dict[str, object], await self._call(chat_id, "stats"))


class _Restarting(Exception):
    """The directory could not hand out an activation just now."""


def is_connected() -> bool:
    return bool(ray.is_initialized())
