"""Answers out through the REST API: in order, within WhatsApp's 24-hour window, with typing shown.

An answer's parts are sent one at a time, each recorded with its SID; with a status callback
configured the next part waits (up to `order_wait_seconds`) until Twilio says the previous one
was sent, so a long answer arrives in order (the last part waits for nothing). A part that fails
stops the answer: the rest are recorded as withheld. An answer due more than 24 hours after the
sender's last message is not sent as free text (Twilio would fail it with 63016): it is sent as
WHATSAPP_TEMPLATE_SID, the answer's opening as its variable {{1}}, or, without a template,
recorded as withheld and counted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from gateways.whatsapp import metrics
from gateways.whatsapp.rest import SendFailed, TwilioRest
from store.media import (
    FAILURES,
    FINAL,
    DeliveryStatus,
    MediaStore,
    OutboundKind,
    OutboundRecord,
    advances,
)
from store.records import utcnow

WINDOW = timedelta(hours=24)
TEMPLATE_EXCERPT_CHARS = 500
TYPING_REPEAT_SECONDS = 20.0  # WhatsApp hides the indicator after 25 s
T = TypeVar("T")
log = logging.getLogger("chatservice.whatsapp.outbox")


def window_open(last_inbound: datetime | None, now: datetime) -> bool:
    """Whether free text may still be sent: the sender wrote within the last 24 hours."""
    return last_inbound is not None and now - last_inbound < WINDOW


def excerpt(text: str, limit: int = TEMPLATE_EXCERPT_CHARS) -> str:
    """A template variable: one line (WhatsApp refuses newlines, tabs and runs of spaces), cut short."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    template_sid: str | None  # WHATSAPP_TEMPLATE_SID
    status_callback: str | None  # PUBLIC_URL + the status route; None: no callbacks, no waiting
    order_wait_seconds: float = 10.0
    poll_seconds: float = 0.2


@dataclass(frozen=True, slots=True)
class Answer:
    chat_id: str
    reply_to: str  # the inbound MessageSid
    sender: str  # whatsapp:+... (the recipient now)
    our_number: str  # the number they wrote to
    parts: tuple[str, ...]


class Outbox:
    """Sends answers' parts and records each; one per gateway process."""

    def __init__(self, rest: TwilioRest, store: MediaStore, settings: OutboxSettings) -> None:
        self._rest = rest
        self._store = store
        self._settings = settings

    async def deliver(self, answer: Answer) -> list[OutboundRecord]:
        """Send (or withhold) every part; returns the records as stored, in part order."""
        last = await self._store.last_inbound(answer.sender)
        if not window_open(last, utcnow()):
            return await self._window_closed(answer)
        done: list[OutboundRecord] = []
        for i, text in enumerate(answer.parts):
            if done and self._settings.status_callback is not None:
                # Only a next part waits for its predecessor: the last one's status arrives alone.
                done[-1] = await self._until_sent(done[-1])
                if done[-1].status in FAILURES:
                    return done + await self._stopped(answer, i - 1, done[-1])
            done.append(await self._send(answer, i, OutboundKind.TEXT, text))
            if done[-1].status in FAILURES:
                return done + await self._stopped(answer, i, done[-1])
        return done

    async def _stopped(self, answer: Answer, part: int, record: OutboundRecord) -> list[OutboundRecord]:
        """The part failed: the rest of the answer is withheld."""
        log.error(
            "WhatsApp answer in chat %s stopped at part %d of %d: %s (error %s)",
            answer.chat_id, part + 1, len(answer.parts), record.status, record.error_code,
        )  # fmt: skip
        return await self._withhold(answer, range(part + 1, len(answer.parts)))

    async def _window_closed(self, answer: Answer) -> list[OutboundRecord]:
        template = self._settings.template_sid
        if template is None:
            metrics.window_closed("withheld")
            log.warning("WhatsApp answer in chat %s withheld: the 24-hour window has closed", answer.chat_id)
            return await self._withhold(answer, range(len(answer.parts)))
        metrics.window_closed("template")
        variables = {"1": excerpt(" ".join(answer.parts))}
        record = await self._send(answer, 0, OutboundKind.TEMPLATE, None, template, variables)
        return [record, *await self._withhold(answer, range(1, len(answer.parts)))]

    async def _send(
        self,
        answer: Answer,
        part: int,
        kind: OutboundKind,
        body: str | None,
        template: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> OutboundRecord:
        callback = self._settings.status_callback
        try:
            sent = await self._rest.send(
                answer.sender, answer.our_number, body=body, template=template, variables=variables,
                status_callback=callback,
            )  # fmt: skip
        except SendFailed as exc:
            local = OutboundRecord(
                f"local:{answer.reply_to}:{part}", answer.chat_id, answer.reply_to, part, kind,
                DeliveryStatus.FAILED, exc.twilio_code,
            )  # fmt: skip
            return await self._store.record_sent(local)
        known = {s.value for s in DeliveryStatus}
        status = DeliveryStatus(sent.status) if sent.status in known else DeliveryStatus.QUEUED
        return await self._store.record_sent(
            OutboundRecord(sent.sid, answer.chat_id, answer.reply_to, part, kind, status)
        )

    async def _until_sent(self, record: OutboundRecord) -> OutboundRecord:
        """Wait until Twilio reports the part sent (or final), at most `order_wait_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.order_wait_seconds
        while not _on_its_way(record.status) and loop.time() < deadline:
            await asyncio.sleep(self._settings.poll_seconds)
            record = await self._store.delivery(record.sid) or record
        return record

    async def _withhold(self, answer: Answer, parts: Sequence[int]) -> list[OutboundRecord]:
        out = []
        for i in parts:
            withheld = OutboundRecord(
                f"local:{answer.reply_to}:{i}", answer.chat_id, answer.reply_to, i, OutboundKind.TEXT,
                DeliveryStatus.WITHHELD,
            )  # fmt: skip
            out.append(await self._store.record_sent(withheld))
        return out


def _on_its_way(status: DeliveryStatus) -> bool:
    return status in FINAL or not advances(status, DeliveryStatus.SENT)


async def while_typing(rest: TwilioRest, message_sid: str, work: Awaitable[T], after: float = 1.0) -> T:
    """Run `work`; if it takes longer than `after` seconds, show the typing indicator until it ends."""
    task = asyncio.ensure_future(work)
    wait = after
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
            await rest.typing(message_sid)
            wait = TYPING_REPEAT_SECONDS
    finally:
        if not task.done():
            task.cancel()
