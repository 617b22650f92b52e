"""The parts of the Twilio stand-in (tests/twilio_api.py) beyond sending: media, typing, status callbacks.

Media URLs answer as Twilio's do with HTTP basic auth on: the account's credentials, then a 307 to a
short-lived signed URL on Twilio's media storage (here a second host:port of the stand-in) that
serves the bytes with no auth at all. Status callbacks are posted as Twilio posts them: a signed
url-encoded form with its field names (SmsSid, SmsStatus, MessageStatus, MessageSid, AccountSid,
From, To, ApiVersion, ChannelPrefix, ChannelInstallSid, ChannelToAddress, StructuredMessage, and
ErrorCode/EventType when there is one).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

SID_SHAPE = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
EVENT_TYPES = {"delivered": "DELIVERED", "read": "READ", "undelivered": "UNDELIVERED", "failed": "FAILED"}


@dataclass
class StoredMedia:
    content_type: str
    data: bytes
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    declared_length: int | None = None  # a Content-Length that lies (None: the true one)
    chunked: bool = False  # sent without a Content-Length
    stall: bool = False  # headers, then nothing: a storage host that hangs


@dataclass(frozen=True)
class MediaRequest:
    host: str  # "api" or "storage"
    path: str
    authorization: str | None


@dataclass(frozen=True)
class Typing:
    auth: tuple[str, str]
    channel: str
    message_id: str


@dataclass(frozen=True)
class Callback:
    url: str
    form: dict[str, str]
    status: int  # what the service answered


def twilio_error(status: int, code: int, message: str) -> web.Response:
    """Twilio's REST error body."""
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


def status_form(
    account: str, sid: str, status: str, to: str, from_: str, error_code: int | None = None
) -> dict[str, str]:
    """The form of one WhatsApp status callback."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "ChannelToAddress": to.removeprefix("whatsapp:"),
        "To": to,
        "ChannelPrefix": "whatsapp",
        "MessageSid": sid,
        "AccountSid": account,
        "StructuredMessage": "false",
        "From": from_,
        "ApiVersion": "2010-04-01",
        "ChannelInstallSid": "XE" + "c" * 32,
    }
    if status in EVENT_TYPES:
        form["EventType"] = EVENT_TYPES[status]
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


class MediaHost:
    """Media by sid on the API host, and the storage host its redirects point at."""

    def __init__(self) -> None:
        self.items: dict[str, StoredMedia] = {}
        self.requests: list[MediaRequest] = []
        self.redirect_to: str | None = None  # send the 307 here instead (an attack's target)
        self.storage_url = ""

    def routes(self, app: web.Application, credentials: Any) -> None:
        self._credentials = credentials
        app.router.add_get("/2010-04-01/Accounts/{account}/Messages/{message}/Media/{media}", self._api)

    def storage_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/media/{token}", self._storage)
        return app

    async def _api(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.requests.append(MediaRequest("api", request.path, auth))
        if not self._credentials(request.match_info["account"], auth):
            return twilio_error(401, 20003, "Authenticate")
        item = self.items.get(request.match_info["media"])
        if item is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        signed = f"/media/{item.token}?Expires=1700000000&Signature={secrets.token_urlsafe(16)}"
        raise web.HTTPTemporaryRedirect(self.redirect_to or self.storage_url + signed)

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(MediaRequest("storage", request.path, request.headers.get("Authorization")))
        item = next((m for m in self.items.values() if m.token == request.match_info["token"]), None)
        if item is None:
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        if item.declared_length is None and not item.chunked and not item.stall:
            return web.Response(body=item.data, headers={"Content-Type": item.content_type})
        response = web.StreamResponse(headers={"Content-Type": item.content_type})
        if item.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = item.declared_length or len(item.data)
        await response.prepare(request)
        if item.stall:
            await asyncio.sleep(3600)
        await response.write(item.data)
        return response


async def post_callback(
    session: aiohttp.ClientSession, auth_token: str, url: str, form: dict[str, str]
) -> int:
    """Post one signed status callback, as Twilio does; returns the HTTP status the service answered."""
    signature = RequestValidator(auth_token).compute_signature(url, form)
    async with session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as r:
        await r.read()
        return r.status


def new_media_sid() -> str:
    return "ME" + uuid.uuid4().hex
