"""Twilio's REST APIs through the real twilio client: message sends and WhatsApp typing indicators.

Messages go to `api.twilio.com` (Messages.json, with StatusCallback, or a ContentSid template);
typing indicators to `messaging.twilio.com/v2/Indicators/Typing.json` (`channel=whatsapp`,
`messageId=<inbound SM/MM sid>`), which also marks that inbound message read; the indicator
disappears when the answer arrives or after 25 s. With TWILIO_API_BASE_URL set (a stand-in, a
proxy) every *.twilio.com host the client addresses is sent there instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from yarl import URL

from store.errors import ChatServiceError, InvalidArgument, Unavailable

TWILIO_API = "https://api.twilio.com"
OUTSIDE_WINDOW = 63016  # free text after the 24-hour customer service window
log = logging.getLogger("chatservice.whatsapp.rest")


class SendFailed(Unavailable):
    """Twilio refused or failed a send; `twilio_code` is its error code (None: no answer at all)."""

    code = "send_failed"

    def __init__(self, message: str, twilio_code: int | None = None) -> None:
        super().__init__(message)
        self.twilio_code = twilio_code


class _RebasedHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's async client, sending whatever it addresses on *.twilio.com to one base URL."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=log)
        self._base = URL(base_url) if base_url and base_url != TWILIO_API else None

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        target = URL(url)
        if self._base is not None and (target.host or "").endswith(".twilio.com"):
            url = str(
                self._base.with_path(self._base.path.rstrip("/") + target.path).with_query(target.query)
            )
        return await super().request(method, url, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class Sent:
    sid: str
    status: str


def _failed(exc: Exception, what: str) -> SendFailed:
    if isinstance(exc, TwilioRestException):
        # Status and Twilio's code only: its message may quote the recipient's number.
        return SendFailed(f"{what}: Twilio answered {exc.status} (error {exc.code})", exc.code)
    return SendFailed(f"{what}: {type(exc).__name__}")


class TwilioRest:
    """One per gateway process: the SDK client over a pooled aiohttp session (made inside the loop)."""

    def __init__(self, account_sid: str, auth_token: str, api_base_url: str | None, timeout: float) -> None:
        self._http = _RebasedHttpClient(api_base_url, timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)

    async def close(self) -> None:
        await self._http.close()

    async def typing(self, message_sid: str) -> bool:
        """Show the typing indicator for (and mark read) the inbound message; False if it failed."""
        try:
            answer = await self._client.messaging.v2.typing_indicator.create_async(
                channel="whatsapp", message_id=message_sid
            )
        except Exception as exc:  # best effort: an answer is never held up by its indicator
            log.warning("WhatsApp typing indicator failed: %s", _failed(exc, "typing").message)
            return False
        return bool(answer.success)

    async def send(
        self,
        to: str,
        from_: str,
        *,
        body: str | None = None,
        template: str | None = None,
        variables: Mapping[str, str] | None = None,
        status_callback: str | None = None,
    ) -> Sent:
        """Create one message (text, or the template `template` with `variables`); SendFailed if refused."""
        if (body is None) == (template is None):
            raise InvalidArgument("a message is either a text body or a template")
        args: dict[str, Any] = {"to": to, "from_": from_}
        if body is not None:
            args["body"] = body
        else:
            args["content_sid"] = template
            if variables:
                args["content_variables"] = json.dumps(dict(variables))
        if status_callback is not None:
            args["status_callback"] = status_callback
        try:
            message = await self._client.messages.create_async(**args)
        except Exception as exc:
            raise _failed(exc, "WhatsApp send") from None
        return Sent(str(message.sid), str(message.status))


def outside_window(error: ChatServiceError) -> bool:
    return isinstance(error, SendFailed) and error.twilio_code == OUTSIDE_WINDOW
