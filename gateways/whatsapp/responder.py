"""Answering WhatsApp deliveries the webhook has verified and claimed: text, media and bursts.

A sender's current chat is their newest `wa:` chat if active, else the next generation. A turn that
ends within TWILIO_REPLY_BUDGET_SECONDS is answered inline (TwiML); a later one, and every burst,
through the REST API in order (served.py), with the typing indicator shown after a second. A failed
turn is answered with an apology (Twilio's retry would be ignored as already claimed).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from gateways.service.chats import ChatService
from gateways.service.events import TurnDelta, TurnStarted
from gateways.service.turns import Extras
from gateways.settings import Settings
from gateways.whatsapp import rules as whatsapp
from gateways.whatsapp.bursts import Bursts
from gateways.whatsapp.inbound import Delivery, Prepared
from gateways.whatsapp.served import Served
from store.errors import ChatServiceError, FailedPrecondition
from store.records import ChatRecord, ChatStatus

DRAIN_SECONDS = 30.0  # at shutdown, how long answers still being written may finish
T = TypeVar("T")
log = logging.getLogger("chatservice.whatsapp")


Reply = tuple[str, list[str]]  # the chat the answer belongs to ("" if unknown), its parts


class Responder:
    """What answers a claimed delivery: chats of a sender, media, bursts, answers still running."""

    def __init__(self, settings: Settings, service: ChatService) -> None:
        assert settings.twilio_auth_token is not None
        self._settings = settings
        self._service = service
        self._key = whatsapp.id_key(settings.whatsapp_id_key, settings.twilio_auth_token)
        self.served: Served | None = None
        self._bursts: Bursts[Delivery] | None = None
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        s = self._settings
        media = getattr(self._service.store, "media", None)
        if s.twilio_account_sid is None or media is None:
            log.warning(
                "TWILIO_ACCOUNT_SID is not set: answers slower than %.0f s cannot be delivered, "
                "media is not read and messages are not gathered into bursts",
                s.twilio_reply_budget_seconds,
            )
            return
        self.served = Served(s, media)  # its aiohttp sessions need the loop
        if s.whatsapp_debounce_ms > 0:
            self._bursts = Bursts(s.whatsapp_debounce_ms / 1000, self._burst)

    async def close(self) -> None:
        if self._bursts is not None:
            await asyncio.wait_for(self._bursts.close(), DRAIN_SECONDS)
        if self._running:
            _, late = await asyncio.wait(self._running, timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.served is not None:
            await self.served.close()

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

    async def _answer(self, sender: str, text: str, prepared: Prepared | None = None) -> Reply:
        """The answer's parts; a failure becomes an apology (Twilio's retry would be a no-op)."""
        chat_id = ""
        try:
            for attempt in (1, 2):
                chat_id = await self._current(sender)
                try:
                    return chat_id, whatsapp.split_message(await self._turn(sender, chat_id, text, prepared))
                except FailedPrecondition:
                    # Ended meanwhile (a `/new` from another delivery): once more on the next chat.
                    if attempt == 2 or await self._current(sender) == chat_id:
                        raise
        except ChatServiceError as exc:
            log.warning("WhatsApp answer failed (%s): %s", exc.code, exc.message)
        except Exception:
            log.exception("WhatsApp answer failed")  # logs.py withholds foreign exception messages
        return chat_id, [whatsapp.FAILED_REPLY]

    async def _turn(self, sender: str, chat_id: str, text: str, prepared: Prepared | None) -> str:
        extras = prepared.extras if prepared else self._text_extras()
        parts: list[str] = []
        async for event in self._service.turn(sender, chat_id, text, whatsapp=True, extras=extras):
            if isinstance(event, TurnStarted) and prepared is not None:
                await prepared.started(event)  # the media rows, now that their message is stored
            elif isinstance(event, TurnDelta):
                parts.append(event.text)
        return "".join(parts)

    def _text_extras(self) -> Extras | None:
        """A text turn sends the window's earlier images too, when media is served."""
        if self.served is None:
            return None
        return Extras(uuid.uuid4().hex, prompt=self.served.answers.window_images)

    async def _media(self, d: Delivery) -> Reply:
        """A media message's answer, or the reply that refuses it."""
        assert self.served is not None
        try:
            chat = await self._newest(d.sender)
        except ChatServiceError as exc:
            log.warning("WhatsApp media message failed (%s): %s", exc.code, exc.message)
            return "", [whatsapp.FAILED_REPLY]
        active = chat is not None and chat.status is ChatStatus.ACTIVE
        model = chat.params.model if chat is not None and active else self._settings.default_params.model
        try:
            prepared = await self.served.answers.prepare(d.media, d.body, model)
        except Exception:
            log.exception("WhatsApp media message failed")
            return "", [whatsapp.FAILED_REPLY]
        if isinstance(prepared, str):
            return (chat.id if chat is not None and active else ""), [prepared]
        return await self._answer(d.sender, prepared.text, prepared)

    def _job(self, d: Delivery) -> Coroutine[Any, Any, Reply]:
        if d.media:
            return self._media(d)
        if whatsapp.is_new_command(d.body):
            return self._started_over(d.sender)
        return self._answer(d.sender, d.body)

    async def _started_over(self, sender: str) -> Reply:
        return "", await self.start_over(sender)

    async def receive(self, d: Delivery) -> list[str]:
        """TwiML parts to answer a claimed delivery with now; [] when answered later (REST)."""
        if self.served is None:
            if d.media:
                return [whatsapp.MEDIA_REPLY]
            if whatsapp.is_new_command(d.body):
                return await self.start_over(d.sender)
        if self._bursts is not None:
            self._bursts.add(d.sender, d)  # answered with the sender's other messages, later
            return []
        return await self.reply(d, self._job(d))

    async def _burst(self, sender: str, burst: list[Delivery]) -> None:
        """A burst, in order: each run of text stored, its last answered; media and `/new` alone."""
        run: list[Delivery] = []
        for d in [*burst, None]:
            if d is not None and not d.media and not whatsapp.is_new_command(d.body):
                run.append(d)
                continue
            if run:
                for held in run[:-1]:
                    await self._hold(sender, held.body)
                await self._later(run[-1], self._answer(sender, run[-1].body))
            run = []
            if d is not None:
                await self._later(d, self._job(d))

    async def _hold(self, sender: str, text: str) -> None:
        """One of a burst's messages before its last: stored in order, answered with the last."""
        try:
            await self._service.hold(sender, await self._current(sender), text, whatsapp=True)
        except ChatServiceError as exc:
            log.warning("WhatsApp burst message not stored (%s): %s", exc.code, exc.message)

    async def _later(self, d: Delivery, work: Coroutine[Any, Any, Reply]) -> None:
        await self._send_later(self._spawn(self._typing(d, work)), d)

    def _typing(self, d: Delivery, work: Coroutine[Any, Any, Reply]) -> Coroutine[Any, Any, Reply]:
        if self.served is None:
            return work
        return self.served.typing(d.sid, work)

    async def reply(self, d: Delivery, work: Coroutine[Any, Any, Reply]) -> list[str]:
        """Parts to answer inline if the turn ends within the budget; else [] and send them later."""
        job = self._spawn(self._typing(d, work))
        try:
            done, _ = await asyncio.wait({job}, timeout=self._settings.twilio_reply_budget_seconds)
        except asyncio.CancelledError:
            self._spawn(self._send_later(job, d))  # Twilio hung up: it never gets TwiML
            raise
        if job in done:
            return job.result()[1]
        self._spawn(self._send_later(job, d))
        return []

    async def _send_later(self, job: asyncio.Task[Reply], d: Delivery) -> None:
        chat_id, parts = await job
        if self.served is None:
            log.warning("an answer missed the reply budget and TWILIO_ACCOUNT_SID is not set: not sent")
            return
        try:
            await self.served.deliver(chat_id, d.sid, d.sender, d.to, parts)
        except Exception:
            log.exception("WhatsApp answer in chat %s could not be sent", chat_id)

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task
