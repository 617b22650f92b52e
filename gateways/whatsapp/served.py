"""The WhatsApp media parts one gateway process serves the webhook with, built from its Settings.

They need the account (TWILIO_ACCOUNT_SID) to fetch media and send through the REST API: without
it the webhook keeps answering inline only, and media messages get the "text only" reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from aiohttp import web

from gateways.settings import Settings
from gateways.whatsapp.callbacks import STATUS_PATH, StatusCallbacks
from gateways.whatsapp.content import ImageSettings
from gateways.whatsapp.fetch import MediaFetcher
from gateways.whatsapp.inbound import MediaAnswers
from gateways.whatsapp.outbox import Answer, Outbox, OutboxSettings, while_typing
from gateways.whatsapp.rest import TwilioRest
from gateways.whatsapp.transcribe import OfflineTranscriber, OpenAITranscriber, Transcriber
from store.errors import NotFound
from store.media import MediaStore, OutboundRecord

T = TypeVar("T")
TYPING_AFTER_SECONDS = 1.0
log = logging.getLogger("chatservice.whatsapp")


class Served:
    """Media answers, the ordered REST outbox, typing and the status callbacks of one process."""

    def __init__(self, settings: Settings, store: MediaStore) -> None:
        s = settings
        assert s.twilio_account_sid is not None and s.twilio_auth_token is not None
        account, token = s.twilio_account_sid, s.twilio_auth_token
        if not log.isEnabledFor(logging.DEBUG):  # the SDK logs every request header at INFO
            logging.getLogger("chatservice.whatsapp.rest").setLevel(logging.WARNING)
        self.rest = TwilioRest(account, token, s.twilio_api_base_url, s.media_timeout_seconds)
        fetcher = MediaFetcher(s.twilio_api_base_url, account, token, timeout_seconds=s.media_timeout_seconds)
        transcriber: Transcriber = OfflineTranscriber()
        if s.openai_api_key:
            transcriber = OpenAITranscriber(
                s.openai_api_key, s.openai_base_url, s.transcribe_model, s.llm_timeout_seconds
            )
        images = ImageSettings(s.vision, s.image_detail, s.image_tokens, s.image_max_bytes)
        self.answers = MediaAnswers(
            store, fetcher, transcriber, images, s.audio_max_bytes, s.voice_max_seconds
        )
        callback = s.public_url + STATUS_PATH if s.public_url else None
        if callback is None:
            log.warning("PUBLIC_URL is not set: WhatsApp answers are sent without status callbacks")
        self.outbox = Outbox(self.rest, store, OutboxSettings(s.whatsapp_template_sid, callback))
        self.callbacks = StatusCallbacks(token, account, s.public_url, store)

    async def close(self) -> None:
        await self.answers.close()
        await self.rest.close()

    async def typing(self, message_sid: str, work: Awaitable[T]) -> T:
        """`work`, with the typing indicator shown for `message_sid` once it takes over a second."""
        return await while_typing(self.rest, message_sid, work, after=TYPING_AFTER_SECONDS)

    async def deliver(
        self, chat_id: str, reply_to: str, sender: str, to: str, parts: Sequence[str]
    ) -> list[OutboundRecord]:
        """Send an answer's parts in order through the REST API (or withhold them after the window)."""
        records = await self.outbox.deliver(Answer(chat_id, reply_to, sender, to, tuple(parts)))
        log.info("sent a WhatsApp answer in %d part(s) through the REST API", len(records))
        return records


SERVED = web.AppKey("whatsapp", Served)


async def status(request: web.Request) -> web.StreamResponse:
    """POST /twilio/whatsapp/status: mounted with the webhook; 404 while the account is not set."""
    served = request.app.get(SERVED)
    if served is None:
        raise NotFound("status callbacks need TWILIO_ACCOUNT_SID")
    return await served.callbacks.handle(request)
