"""Many conversations at once against the served /v1 API, each chat's turns in order, all logged."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from urllib.parse import quote

import aiohttp

from tests.faults.ledger import Ledger, Sent

PAUSE_AFTER_ERROR = 0.3


class Load:
    """A client of `chatservice serve` that never resends a message: each attempt is a new one."""

    def __init__(self, base_url: str, token: str, user: str, ledger: Ledger, timeout: float = 90.0) -> None:
        self.base_url = base_url
        self.user = user
        self.ledger = ledger
        self._headers = {"Authorization": token}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    def _chats_url(self) -> str:
        return f"{self.base_url}/v1/users/{quote(self.user, safe='')}/chats"

    async def create(self, chat_id: str, deadline: float) -> bool:
        """Create the chat (a 409 means an earlier attempt did); retried until the deadline."""
        assert self._session is not None
        while time.monotonic() < deadline:
            try:
                async with self._session.post(self._chats_url(), json={"chat_id": chat_id}) as r:
                    if r.status in (201, 409):
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(PAUSE_AFTER_ERROR)
        return False

    async def turn(self, chat_id: str, n: int) -> Sent:
        assert self._session is not None
        sent = Sent(chat_id, f"{chat_id} #{n} {uuid.uuid4().hex[:8]}")
        url = f"{self._chats_url()}/{chat_id}/messages"
        started = time.monotonic()
        try:
            async with self._session.post(url, json={"content": sent.content}) as r:
                body = await r.json(content_type=None)
                if r.status == 200:
                    sent.answer = body["content"]
                else:
                    sent.error, sent.detail = str(r.status), body["error"]["message"]
        except TimeoutError:
            sent.error = "client timeout"
        except aiohttp.ClientError:
            sent.error = "connection lost"
        sent.seconds = time.monotonic() - started
        self.ledger.record(sent)
        return sent

    async def converse(self, chat_id: str, acks: int, deadline: float, pause: float = 0.0) -> int:
        """Send turns until `acks` are acknowledged or the deadline passes; returns the acks."""
        if not await self.create(chat_id, deadline):
            return 0
        done, n = 0, 0
        while done < acks and time.monotonic() < deadline:
            n += 1
            sent = await self.turn(chat_id, n)
            if sent.acknowledged:
                done += 1
                await asyncio.sleep(pause)
            else:
                await asyncio.sleep(PAUSE_AFTER_ERROR)
        return done

    async def run(
        self, chat_ids: Iterable[str], acks: int, within: float, concurrency: int, pause: float = 0.0
    ) -> list[int]:
        """All chats at once (at most `concurrency` in flight); acks reached per chat."""
        deadline = time.monotonic() + within
        gate = asyncio.Semaphore(concurrency)

        async def one(chat_id: str) -> int:
            async with gate:
                return await self.converse(chat_id, acks, deadline, pause)

        return list(await asyncio.gather(*(one(c) for c in chat_ids)))
