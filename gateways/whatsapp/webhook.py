"""POST /twilio/whatsapp: WhatsApp messages through Twilio, answered inline (TwiML) or later (REST).

A delivery is trusted only with a valid X-Twilio-Signature over PUBLIC_URL + path and the form.
Twilio's signature joins names and values with no separator, so a captured delivery re-posted
with its fields shifted (`MessageSid=<sid>NumMedia0`, no NumMedia) still verifies: every field
Twilio always sends must therefore be present and of Twilio's exact shape. Each MessageSid is
claimed in the store before anything runs, so a retried delivery (from any gateway process, even
while the first still runs) never starts a second turn or answer. What answers it, media and
bursts included, is gateways/whatsapp/responder.py; the status callbacks of the answers it
sends are POST /twilio/whatsapp/status (gateways/whatsapp/callbacks.py), mounted here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from gateways.http.keys import SERVICE, SETTINGS
from gateways.service.chats import ChatService
from gateways.service.text import shows_something
from gateways.settings import Settings
from gateways.whatsapp.callbacks import STATUS_PATH
from gateways.whatsapp.inbound import Delivery, media_of
from gateways.whatsapp.responder import Responder
from gateways.whatsapp.served import SERVED, status
from store.errors import InvalidArgument, PermissionDenied

PATH = "/twilio/whatsapp"
UNSIGNED = "X-Twilio-Signature is missing or does not match this URL and body"
FORM = "application/x-www-form-urlencoded"
# Twilio's own shapes (its API definitions): a prefix and 32 hex digits. Full matches only.
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_COUNT = re.compile(r"[0-9]{1,3}")
log = logging.getLogger("chatservice.whatsapp")
routes = web.RouteTableDef()
routes.post(STATUS_PATH)(status)  # Twilio's status callbacks, signed as the webhook is


class WhatsApp:
    """The webhook's long-lived parts: the signature validator and the responder."""

    def __init__(self, settings: Settings, service: ChatService) -> None:
        assert settings.twilio_auth_token is not None
        self._settings = settings
        self._validator = RequestValidator(settings.twilio_auth_token)
        self.responder = Responder(settings, service)

    def signed(self, request: web.Request, form: MultiDictProxy[Any]) -> bool:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            return False
        base = self._settings.public_url
        url = base + request.raw_path if base else str(request.url)
        return bool(self._validator.validate(url, form, signature))


WHATSAPP = web.AppKey("whatsapp", WhatsApp)


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the REST client lives as long as the app; answers still running may finish."""
    bot = WhatsApp(app[SETTINGS], app[SERVICE])
    await bot.responder.start()
    app[WHATSAPP] = bot
    if bot.responder.served is not None:
        app[SERVED] = bot.responder.served
    yield
    await bot.responder.close()


def twiml(parts: list[str]) -> web.Response:
    response = MessagingResponse()
    for part in parts:
        response.message(part)
    return web.Response(text=str(response), content_type="text/xml")


def _field(form: MultiDictProxy[Any], name: str, shape: re.Pattern[str] | None = None) -> str:
    """A field Twilio always sends, present once, and of its shape when one is given."""
    values = form.getall(name, [])
    if len(values) != 1 or not isinstance(values[0], str):
        raise InvalidArgument(f"{name} is required, once")
    value: str = values[0]
    if shape is not None and not shape.fullmatch(value):
        raise InvalidArgument(f"{name} is not of the shape Twilio sends")
    if shape is None and name != "Body" and not value.strip():
        raise InvalidArgument(f"{name} is required")
    return value


def _account(form: MultiDictProxy[Any], settings: Settings) -> None:
    account = _field(form, "AccountSid", _ACCOUNT_SID)
    if settings.twilio_account_sid is not None and account != settings.twilio_account_sid:
        raise PermissionDenied("this delivery is for another Twilio account")


async def _read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The url-encoded form Twilio posts; anything else is nothing Twilio could have signed.

    Multipart is never parsed: a file part reached the signature check (TypeError) and a broken
    part header failed the parser (InvalidHeader), both 500s.
    """
    if request.content_type != FORM:
        raise PermissionDenied(UNSIGNED)
    try:
        return await request.post()
    except (ValueError, LookupError):  # undecodable bytes, an unknown charset
        raise PermissionDenied(UNSIGNED) from None  # not a form Twilio could have signed


@routes.post(PATH)
async def webhook(request: web.Request) -> web.Response:
    bot = request.app[WHATSAPP]
    if not request.headers.get("X-Twilio-Signature"):
        raise PermissionDenied(UNSIGNED)  # before the body is read: unsigned is always 403
    form = await _read_form(request)
    if not bot.signed(request, form):
        raise PermissionDenied(UNSIGNED)
    _account(form, request.app[SETTINGS])
    sid = _field(form, "MessageSid", _MESSAGE_SID)
    sender, to, body = _field(form, "From"), _field(form, "To"), _field(form, "Body")
    media = media_of(form, int(_field(form, "NumMedia", _COUNT)))
    if not media and not shows_something(body):
        return twiml([])  # nothing to answer
    if not await request.app[SERVICE].claim_event(sid, sender):
        log.info("WhatsApp delivery %s already taken: a retry, ignored", sid)
        return twiml([])
    return twiml(await bot.responder.receive(Delivery(sid, sender, to, body, media)))
