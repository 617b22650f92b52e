"""The Conversations port on hosts (the hosted placement): chat_id -> `host:<n>` by hash, no directory."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from typing import Any, cast

from actors.host import ConversationHost, HostConfig, host_name
from actors.remote import Gone, RemoteConversations, backoff, unwrap
from store.errors import Unavailable

log = logging.getLogger("chatservice.router")


def host_of(chat_id: str, hosts: int) -> int:
    """The host that serves a chat: the same in every gateway, with no call to find it."""
    digest = hashlib.blake2b(chat_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % hosts


class HostedRouter(RemoteConversations):
    """The Conversations port (actors/port.py) over `hosts` named host actors, spread over the nodes.

    The first gateway of a deployment creates the hosts with its config; a later one learns their
    count from host 0 (`start`). A call that finds its host dead or restarting is retried on the
    same name, which Ray restarts, for up to `wait_seconds` after the first failure: the restarted
    host loads the chat from the store and adopts a turn in flight, as a new activation does.
    """

    def __init__(self, config: HostConfig, wait_seconds: float = 10.0) -> None:
        self._config = config
        self._wait_seconds = wait_seconds
        self._hosts = config.hosts
        self._handles: dict[int, Any] = {}

    @property
    def hosts(self) -> int:
        return self._hosts

    def host(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            handle = self._handles[index] = ConversationHost.options(  # type: ignore[attr-defined]
                name=host_name(index),
                namespace=self._config.namespace,
                get_if_exists=True,
                lifetime="detached",
                scheduling_strategy="SPREAD",  # hosts spread over the cluster's nodes
            ).remote(index, self._config)
        return handle

    async def start(self) -> int:
        """Create (or find) the hosts; the deployment's host count is the first gateway's."""
        self._hosts = cast(int, await self.host(0).count.remote())
        for index in range(1, self._hosts):
            self.host(index)
        return self._hosts

    def locate(self, chat_id: str) -> str:
        """The name of the host that serves the chat."""
        return host_name(host_of(chat_id, self._hosts))

    async def _call(self, chat_id: str, method: str, *args: Any) -> Any:
        host = self.host(host_of(chat_id, self._hosts))
        deadline: float | None = None
        for attempt in itertools.count(1):
            try:
                return await unwrap(host.call.remote(method, chat_id, *args))
            except Gone as gone:
                why = str(gone)
            pause = backoff(attempt)
            deadline = deadline or time.monotonic() + self._wait_seconds
            if attempt > 1 and time.monotonic() + pause > deadline:
                log.warning("chat %s: %s failed %d times, last: %s", chat_id, method, attempt, why)
                raise Unavailable("the conversation's host is restarting; retry shortly")
            log.info("chat %s: %s during %s, retrying (attempt %d)", chat_id, why, method, attempt)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # itertools.count never ends; mypy wants a return

    async def stats(self) -> list[dict[str, Any]]:
        """Every host's live chats and footprint."""
        return list(await asyncio.gather(*(self.host(i).stats.remote() for i in range(self._hosts))))

    async def passivate_all(self) -> int:
        """Drop every idle chat of every host (when the service that owns Ray shuts down)."""
        return sum(await asyncio.gather(*(self.host(i).passivate_all.remote() for i in range(self._hosts))))

    async def close(self) -> None:
        return None
