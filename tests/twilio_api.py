"""A local HTTP server standing in for Twilio's REST API (Messages), for the real twilio client.

`with FakeTwilio() as api: api.base_url` runs on its own thread and event loop and records every
message the service creates, in arrival order.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

from aiohttp import web


@dataclass(frozen=True)
class Sent:
    account_sid: str
    auth: tuple[str, str]
    to: str
    from_: str
    body: str


class FakeTwilio:
    """Serves POST /2010-04-01/Accounts/{sid}/Messages.json as Twilio does (201 + the message)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures: list[int] = []  # statuses to answer the next requests with
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.base_url = ""

    def __enter__(self) -> FakeTwilio:
        self._thread = threading.Thread(target=self._run, name="fake-twilio", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Twilio API did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self._create)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._ready.set()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        user, _, password = (
            base64.b64decode(request.headers.get("Authorization", "Basic ").split(" ", 1)[1] or b"")
            .decode()
            .partition(":")
        )
        if self.failures:
            status = self.failures.pop(0)
            return web.json_response(
                {"code": 20500, "message": "fake failure", "status": status}, status=status
            )
        account = request.match_info["account_sid"]
        sent = Sent(account, (user, password), str(form["To"]), str(form["From"]), str(form["Body"]))
        self.sent.append(sent)
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        return web.json_response(
            {
                "sid": sid,
                "account_sid": account,
                "to": sent.to,
                "from": sent.from_,
                "body": sent.body,
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "num_media": "0",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            },
            status=201,
        )
