"""POST /twilio/whatsapp/status: Twilio's status callbacks for the messages the service sent.

Trusted as the webhook is: a valid X-Twilio-Signature over PUBLIC_URL + path and the posted form
(else 403, nothing recorded), this account's AccountSid (else 403), and Twilio's shapes for the
fields the record uses (else 400). Callbacks arrive out of order and more than once: each is
applied only if it moves its message forward (store.media.advances), so a late `sent` never
overwrites `read`. Failures are counted and logged with the chat and Twilio's error code.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from gateways.whatsapp import metrics
from gateways.whatsapp.rest import OUTSIDE_WINDOW
from store.errors import InvalidArgument, PermissionDenied
from store.media import FAILURES, DeliveryStatus, MediaStore

STATUS_PATH = "/twilio/whatsapp/status"
UNSIGNED = "X-Twilio-Signature is missing or does not match this URL and body"
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")
_TWILIO_STATUSES = frozenset(s.value for s in DeliveryStatus) - {DeliveryStatus.WITHHELD.value}
log = logging.getLogger("chatservice.whatsapp.status")


class StatusCallbacks:
    """The route's parts: the validator, the account, the store."""

    def __init__(
        self, auth_token: str, account_sid: str | None, public_url: str | None, store: MediaStore
    ) -> None:
        self._validator = RequestValidator(auth_token)
        self._account = account_sid
        self._public_url = public_url
        self._store = store

    async def handle(self, request: web.Request) -> web.Response:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise PermissionDenied(UNSIGNED)  # before the body is read
        form = await _read_form(request)
        url = self._public_url + request.raw_path if self._public_url else str(request.url)
        if not self._validator.validate(url, form, signature):
            raise PermissionDenied(UNSIGNED)
        account = _field(form, "AccountSid", _ACCOUNT_SID)
        if self._account is not None and account != self._account:
            raise PermissionDenied("this callback is for another Twilio account")
        sid = _field(form, "MessageSid", _MESSAGE_SID)
        status = _field(form, "MessageStatus")
        if status not in _TWILIO_STATUSES:
            raise InvalidArgument("MessageStatus is not one Twilio sends")
        code = form.get("ErrorCode")
        if code is not None and not (isinstance(code, str) and _ERROR_CODE.fullmatch(code)):
            raise InvalidArgument("ErrorCode is not of the shape Twilio sends")
        error_code = int(code) if code else None
        before = await self._store.delivery(sid)
        after = await self._store.record_status(sid, DeliveryStatus(status), error_code)
        if before is None or before.status is not after.status:
            self._moved(after.chat_id, after.part, after.status, after.error_code)
        return web.Response(status=204)

    @staticmethod
    def _moved(chat_id: str | None, part: int | None, status: DeliveryStatus, code: int | None) -> None:
        metrics.delivery(status.value)
        if status in FAILURES:
            if code == OUTSIDE_WINDOW:
                metrics.window_closed("failed")
            log.error("WhatsApp message %s in chat %s: %s (error %s)", part, chat_id, status.value, code)


def _field(form: MultiDictProxy[Any], name: str, shape: re.Pattern[str] | None = None) -> str:
    values = form.getall(name, [])
    if len(values) != 1 or not isinstance(values[0], str):
        raise InvalidArgument(f"{name} is required, once")
    value: str = values[0]
    if shape is not None and not shape.fullmatch(value):
        raise InvalidArgument(f"{name} is not of the shape Twilio sends")
    return value


async def _read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The url-encoded form Twilio posts; anything else is nothing Twilio could have signed."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise PermissionDenied(UNSIGNED)
    try:
        return await request.post()
    except (ValueError, LookupError):
        raise PermissionDenied(UNSIGNED) from None
