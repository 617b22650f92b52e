"""POST /twilio/whatsapp: WhatsApp messages through Twilio, answered inline (TwiML) or later (REST).

A delivery is trusted only with a valid X-Twilio-Signature over PUBLIC_URL + path and the form.
Twilio's signature joins names and values with no separator, so a captured delivery re-posted
with its fields shifted (`MessageSid=<sid>NumMedia0`, no NumMedia) still verifies: every field
Twilio always sends must therefore be present and of Twilio's exact shape. Each MessageSid is
claimed in the store before anything runs, so a retried delivery (from any gateway process, even
while the first still runs) never starts a second turn or answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from gateways import whatsapp
from gateways.http.keys import SERVICE, SETTINGS
from gateways.service import ChatService
from gateways.settings import Settings
from gateways.text import shows_something
from store.errors import ChatServiceError, FailedPrecondition, InvalidArgument, PermissionDenied
from store.records import ChatRecord, ChatStatus

PATH = "/twilio/whatsapp"
TWILIO_API = "https://api.twilio.com"
DRAIN_SECONDS = 30.0  # at shutdown, how long answers still being written may finish
UNSIGNED = "X-Twilio-Signature is missing or does not match this URL and body"
FORM = "application/x-www-form-urlencoded"
# Twilio's own shapes (its API definitions): a prefix and 32 hex digits. Full matches only.
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_COUNT = re.compile(r"[0-9]{1,3}")
T = TypeVar("T")
log = logging.getLogger("chatservice.whatsapp")
_http_log = logging.getLogger("chatservice.whatsapp.rest")  # the SDK logs every header at INFO
routes = web.RouteTableDef()


class _RebasedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's async client, sending what it addresses to api.twilio.com to another base URL."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=15, logger=_http_log)
        self._base_url = base_url

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API):
            url = self._base_url + url[len(TWILIO_API) :]
        return await super().request(method, url, *args, **kwargs)


class WhatsApp:
    """The webhook's long-lived parts: the validator, the REST client, answers still running."""

    def __init__(self, settings: Settings, service: ChatService) -> None:
        assert settings.twilio_auth_token is not None
        self._settings = settings
        self._service = service
        self._validator = RequestValidator(settings.twilio_auth_token)
        self._key = whatsapp.id_key(settings.whatsapp_id_key, settings.twilio_auth_token)
        self._http: AsyncTwilioHttpClient | None = None
        self._rest: Any = None
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        s = self._settings
        if s.twilio_account_sid is None:
            log.warning(
                "TWILIO_ACCOUNT_SID is not set: answers slower than %.0f s cannot be delivered",
                s.twilio_reply_budget_seconds,
            )
            return
        if not log.isEnabledFor(logging.DEBUG):
            _http_log.setLevel(logging.WARNING)
        self._http = _RebasedHttpClient(s.twilio_api_base_url)  # its aiohttp session needs the loop
        self._rest = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=self._http)

    async def close(self) -> None:
        if self._running:
            _, late = await asyncio.wait(self._running, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def signed(self, request: web.Request, form: MultiDictProxy[Any]) -> bool:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            return False
        base = self._settings.public_url
        url = base + request.raw_path if base else str(request.url)
        return bool(self._validator.validate(url, form, signature))

    # -- conversations -----------------------------------------------------------------------

    async def _newest(self, sender: str) -> ChatRecord | None:
        """The sender's newest WhatsApp chat (generations are created in order).

        Listed by user id, so chats named under an earlier key (or by the number itself, before
        keys) are still found and continued.
        """
        chats, _ = await self._service.list_chats(sender, page_size=20)
        return next((c for c in chats if whatsapp.generation_of(c.id) is not None), None)

    async def _current(self, sender: str) -> str:
        """The chat this sender's next message goes to: their newest if active, else the next one."""
        chat = await self._newest(sender)
        if chat is None:
            return whatsapp.chat_id_for(sender, 1, self._key)
        if chat.status is ChatStatus.ACTIVE:
            return chat.id
        return whatsapp.chat_id_for(sender, (whatsapp.generation_of(chat.id) or 0) + 1, self._key)

    async def start_over(self, sender: str) -> list[str]:
        """`/new`: end the sender's chat; their next message opens the next generation."""
        try:
            chat = await self._newest(sender)
            if chat is not None and chat.status is ChatStatus.ACTIVE:
                await self._service.end_chat(sender, chat.id)
        except ChatServiceError as exc:
            log.warning("WhatsApp /new failed (%s): %s", exc.code, exc.message)
            return [whatsapp.FAILED_REPLY]
        return [whatsapp.NEW_CHAT_REPLY]

    async def _answer(self, sender: str, text: str) -> list[str]:
        """The answer's parts; a failure becomes an apology (Twilio's retry would be a no-op)."""
        try:
            for attempt in (1, 2):
                chat_id = await self._current(sender)
                try:
                    _, answer = await self._service.answer(sender, chat_id, text, whatsapp=True)
                    return whatsapp.split_message(answer)
                except FailedPrecondition:
                    # Ended meanwhile (a `/new` from another delivery): once more on the next chat.
                    if attempt == 2 or await self._current(sender) == chat_id:
                        raise
        except ChatServiceError as exc:
            log.warning("WhatsApp answer failed (%s): %s", exc.code, exc.message)
        except Exception:
            log.exception("WhatsApp answer failed")  # logs.py withholds foreign exception messages
        return [whatsapp.FAILED_REPLY]

    async def reply(self, sender: str, to: str, text: str) -> list[str]:
        """Parts to answer inline if the turn ends within the budget; else [] and send them later."""
        job = self._spawn(self._answer(sender, text))
        try:
            done, _ = await asyncio.wait({job}, timeout=self._settings.twilio_reply_budget_seconds)
        except asyncio.CancelledError:
            self._spawn(self._send_later(job, sender, to))  # Twilio hung up: it never gets TwiML
            raise
        if job in done:
            return job.result()
        self._spawn(self._send_later(job, sender, to))
        return []

    async def _send_later(self, job: asyncio.Task[list[str]], sender: str, to: str) -> None:
        parts = await job
        if self._rest is None:
            log.warning("an answer missed the reply budget and TWILIO_ACCOUNT_SID is not set: not sent")
            return
        for i, part in enumerate(parts):
            try:
                await self._rest.messages.create_async(to=sender, from_=to, body=part)
            except Exception as exc:
                # Not retried: a create that failed late may have been sent, and twice is worse.
                # Status and Twilio's error code only: its message quotes the recipient's number.
                why = f"{type(exc).__name__} {getattr(exc, 'status', '')} {getattr(exc, 'code', '')}"
                log.error("WhatsApp send failed at part %d of %d: %s", i + 1, len(parts), why.strip())
                return
        log.info("sent a late WhatsApp answer in %d part(s) through the REST API", len(parts))

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task


WHATSAPP = web.AppKey("whatsapp", WhatsApp)


async def lifetime(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the REST client lives as long as the app; answers still running may finish."""
    bot = WhatsApp(app[SETTINGS], app[SERVICE])
    await bot.start()
    app[WHATSAPP] = bot
    yield
    await bot.close()


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
    media = int(_field(form, "NumMedia", _COUNT)) > 0
    if not media and not shows_something(body):
        return twiml([])  # nothing to answer
    if not await request.app[SERVICE].claim_event(sid, sender):
        log.info("WhatsApp delivery %s already taken: a retry, ignored", sid)
        return twiml([])
    if media:
        return twiml([whatsapp.MEDIA_REPLY])
    if whatsapp.is_new_command(body):
        return twiml(await bot.start_over(sender))
    return twiml(await bot.reply(sender, to, body))
