"""Keeps a streaming turn's lease: renewed every third of TURN_TIMEOUT_SECONDS while its answer runs.

A short turn ends before the first renewal, so it costs no call; a gateway that dies stops renewing,
and the conversation frees the chat when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from store.errors import ChatServiceError, FailedPrecondition, NotFound

log = logging.getLogger("chatservice.service")
Renew = Callable[[str, str, int | None], Awaitable[None]]  # (chat_id, turn_id, user_message_id)


class Leases:
    """One renewing task per turn this gateway is running, from its begin to its end."""

    def __init__(self, renew: Renew, lease_seconds: float) -> None:
        self._renew = renew
        self._every = lease_seconds / 3
        self._kept: dict[str, asyncio.Task[None]] = {}

    def keep(self, chat_id: str, turn_id: str, user_message_id: int | None = None) -> None:
        if turn_id not in self._kept:
            self._kept[turn_id] = asyncio.ensure_future(self._renewing(chat_id, turn_id, user_message_id))

    def release(self, turn_id: str) -> None:
        task = self._kept.pop(turn_id, None)
        if task is not None:
            task.cancel()

    def __len__(self) -> int:
        return len(self._kept)

    async def _renewing(self, chat_id: str, turn_id: str, user_message_id: int | None) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._renew(chat_id, turn_id, user_message_id)
            except (FailedPrecondition, NotFound) as exc:
                # The chat has moved on (the lease ran out during an outage): the turn's end says so.
                log.warning("chat %s: turn %s lost its lease: %s", chat_id, turn_id, exc)
                return
            except ChatServiceError as exc:
                log.warning("chat %s: could not renew turn %s (trying again): %s", chat_id, turn_id, exc)
