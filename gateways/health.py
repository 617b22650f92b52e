"""Readiness: is Ray connected and the store reachable? Shared by HTTP /readyz and gRPC health."""

from __future__ import annotations

import asyncio

import ray

from store.base import ChatStore
from store.errors import ChatServiceError

PING_TIMEOUT_SECONDS = 2.0


class Readiness:
    def __init__(self, store: ChatStore) -> None:
        self._store = store

    async def check(self) -> dict[str, bool]:
        """Each dependency and whether it answers now."""
        return {"ray": bool(ray.is_initialized()), "store": await self._store_ok()}

    async def _store_ok(self) -> bool:
        try:
            await asyncio.wait_for(self._store.ping(), PING_TIMEOUT_SECONDS)
        except (ChatServiceError, TimeoutError):
            return False
        return True
