"""Readiness: do the store and the conversations' runtime answer? Shared by HTTP /readyz and gRPC health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from store.base import ChatStore
from store.errors import ChatServiceError

PING_TIMEOUT_SECONDS = 2.0


class Readiness:
    """The store, pinged; and what the wiring adds (`ray` for conversations on Ray, none in-process)."""

    def __init__(self, store: ChatStore, checks: Mapping[str, Callable[[], bool]] | None = None) -> None:
        self._store = store
        self._checks = dict(checks or {})

    async def check(self) -> dict[str, bool]:
        """Each dependency and whether it answers now."""
        checks = {name: bool(check()) for name, check in self._checks.items()}
        return checks | {"store": await self._store_ok()}

    async def _store_ok(self) -> bool:
        try:
            await asyncio.wait_for(self._store.ping(), PING_TIMEOUT_SECONDS)
        except (ChatServiceError, TimeoutError):
            return False
        return True
