"""A local HTTP server standing in for Twilio's REST API, for the real twilio client.

`with FakeTwilio() as api: api.base_url` runs on its own thread and event loop and records every
message the service creates, in arrival order; with `auth_token` it also serves media URLs (auth
checked, then a redirect to a second host that serves the bytes), records typing indicators, posts
signed status callbacks to each message's StatusCallback (`callback_statuses`), and refuses free
text to `outside_window` recipients with error 63016 as Twilio does: the message is created
(queued) and then fails (tests/twilio_media.py).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
from aiohttp import web

from tests.twilio_media import (
    SID_SHAPE,
    Callback,
    MediaHost,
    StoredMedia,
    Typing,
    new_media_sid,
    post_callback,
    status_form,
    twilio_error,
)


@dataclass(frozen=True)
class Sent:
    account_sid: str
    auth: tuple[str, str]
    to: str
    from_: str
    body: str
    sid: str = field(default="", compare=False)  # Twilio's, unknown to a test that builds one
    status_callback: str | None = None
    content_sid: str | None = None
    content_variables: str | None = None


def _basic(header: str | None) -> tuple[str, str]:
    encoded = (header or "Basic ").split(" ", 1)[1] if " " in (header or "") else ""
    user, _, password = base64.b64decode(encoded or b"").decode().partition(":")
    return user, password


class FakeTwilio:
    """Serves Messages.json (201 + the message), media URLs, typing indicators; posts callbacks."""

    def __init__(self, auth_token: str | None = None) -> None:
        self.sent: list[Sent] = []
        self.failures: list[int] = []  # statuses to answer the next requests with
        self.auth_token = auth_token
        self.media = MediaHost()
        self.typing: list[Typing] = []
        self.callbacks: list[Callback] = []
        self.callback_statuses: list[str] = []  # posted in order to each new message's StatusCallback
        self.outside_window: set[str] = set()  # recipients whose 24-hour window has closed
        self.log: list[str] = []  # "create <sid>" and "callback <sid> <status>", in the order they happened
        self._storage: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
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
        asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop).result(10)
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
        app.router.add_post("/v2/Indicators/Typing.json", self._typing)
        self.media.routes(app, self._authorized)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._storage = web.AppRunner(
            self.media.storage_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1
        )
        await self._storage.setup()
        await web.TCPSite(self._storage, "127.0.0.1", 0).start()
        self.media.storage_url = f"http://127.0.0.1:{self._storage.addresses[0][1]}"
        self._ready.set()

    async def _cleanup(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        assert self._runner is not None and self._storage is not None
        await self._runner.cleanup()
        await self._storage.cleanup()

    # -- what tests set up and ask ----------------------------------------------------------

    def add_media(
        self, account: str, content_type: str, data: bytes, message: str | None = None, **how: Any
    ) -> str:
        """A media URL of the inbound `message`, as Twilio puts in MediaUrl0 (`how`: StoredMedia's)."""
        sid = new_media_sid()
        self.media.items[sid] = StoredMedia(content_type, data, **how)
        message = message or "MM" + uuid.uuid4().hex
        return f"{self.base_url}/2010-04-01/Accounts/{account}/Messages/{message}/Media/{sid}"

    async def post_status(self, url: str, sent: Sent, status: str, error_code: int | None = None) -> int:
        """Post one signed status callback for `sent` from the caller's loop; the service's answer."""
        assert self.auth_token is not None
        form = status_form(sent.account_sid, sent.sid, status, sent.to, sent.from_, error_code)
        async with aiohttp.ClientSession() as session:
            answer = await post_callback(session, self.auth_token, url, form)
        self.callbacks.append(Callback(url, form, answer))
        return answer

    def _authorized(self, account: str, header: str | None) -> bool:
        return _basic(header) == (account, self.auth_token or "")

    async def _typing(self, request: web.Request) -> web.Response:
        form = await request.post()
        user, password = _basic(request.headers.get("Authorization"))
        if self.auth_token is not None and password != self.auth_token:
            return twilio_error(401, 20003, "Authenticate")
        message_id, channel = str(form.get("messageId", "")), str(form.get("channel", ""))
        if channel != "whatsapp" or not SID_SHAPE.fullmatch(message_id):
            return twilio_error(400, 21610 if channel == "whatsapp" else 20001, "Invalid parameter")
        self.typing.append(Typing((user, password), channel, message_id))
        return web.json_response({"success": True})

    def _callbacks_for(self, sent: Sent) -> None:
        """After a create: the callbacks Twilio would post, in order, from this loop."""
        if sent.status_callback is None or self.auth_token is None:
            return
        failing = sent.content_sid is None and sent.to in self.outside_window
        statuses = [("failed", 63016)] if failing else [(s, None) for s in self.callback_statuses]

        async def post_all(url: str) -> None:
            async with aiohttp.ClientSession() as session:
                for status, code in [("queued", None), *statuses]:
                    form = status_form(sent.account_sid, sent.sid, status, sent.to, sent.from_, code)
                    self.log.append(f"callback {sent.sid} {status}")  # before the service can see it
                    answer = await post_callback(session, self.auth_token or "", url, form)
                    self.callbacks.append(Callback(url, form, answer))

        task = asyncio.ensure_future(post_all(sent.status_callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        user, password = _basic(request.headers.get("Authorization"))
        if self.failures:
            status = self.failures.pop(0)
            return web.json_response(
                {"code": 20500, "message": "fake failure", "status": status}, status=status
            )
        account = request.match_info["account_sid"]
        sid = "SM" + uuid.uuid4().hex
        optional = {
            k: str(form[k]) if k in form else None
            for k in ("StatusCallback", "ContentSid", "ContentVariables")
        }
        if "Body" not in form and optional["ContentSid"] is None:
            return twilio_error(400, 21619, "A text message body or media urls must be specified.")
        sent = Sent(
            account, (user, password), str(form["To"]), str(form["From"]), str(form.get("Body", "")), sid,
            optional["StatusCallback"], optional["ContentSid"], optional["ContentVariables"],
        )  # fmt: skip
        self.sent.append(sent)
        self.log.append(f"create {sid}")
        self._callbacks_for(sent)
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
