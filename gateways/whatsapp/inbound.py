"""An inbound WhatsApp message with media, made ready for its turn: fetched, checked, transcribed.

The webhook hands over a signed, claimed delivery; a voice note becomes its transcript (the media
row keeps its content type and marks it spoken), an image its caption plus the image (stored in the
media table, counted in the window, sent to the model as content parts). Anything refused becomes
the reply the sender is told, and nothing is stored: media rows are written only once the turn has
stored the message they belong to.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from actors.protocol import TurnPlan
from gateways.service.events import TurnStarted
from gateways.service.turns import Extras
from gateways.whatsapp import metrics, replies
from gateways.whatsapp.content import CheckedImage, ImageSettings, check_image, with_images
from gateways.whatsapp.fetch import Fetched, MediaFetcher
from gateways.whatsapp.images import IMAGE_TYPES, sees_images
from gateways.whatsapp.transcribe import AUDIO_TYPES, Transcriber, check_duration, reply_for
from store.errors import ChatServiceError, InvalidArgument, PermissionDenied
from store.media import MediaKind, MediaRecord, MediaStore

MAX_MEDIA = 10  # Twilio's limit of media items on one message
NO_CAPTION = "(image)"  # the stored text of an image sent without a caption
_MEDIA_FIELD = re.compile(r"Media(?:Url|ContentType)([0-9]+)")
log = logging.getLogger("chatservice.whatsapp.media")


@dataclass(frozen=True, slots=True)
class Media:
    url: str
    content_type: str  # as Twilio declared it; what the fetch gets is checked again


@dataclass(frozen=True, slots=True)
class Prepared:
    """A media message ready for its turn: the text stored, and what the turn adds to it."""

    text: str
    extras: Extras
    started: Callable[[TurnStarted], Awaitable[None]]


def media_of(form: Any, count: int) -> tuple[Media, ...]:
    """MediaUrl<i>/MediaContentType<i> for i < NumMedia, each once; none beyond (InvalidArgument)."""
    if count > MAX_MEDIA:
        raise InvalidArgument(f"NumMedia is at most {MAX_MEDIA}")
    for name in form:
        match = _MEDIA_FIELD.fullmatch(name)
        if match and int(match.group(1)) >= count:
            raise InvalidArgument("a media field beyond NumMedia")
    out = []
    for i in range(count):
        url, kind = form.getall(f"MediaUrl{i}", []), form.getall(f"MediaContentType{i}", [])
        if len(url) != 1 or len(kind) != 1 or not all(isinstance(v, str) for v in (*url, *kind)):
            raise InvalidArgument(f"MediaUrl{i} and MediaContentType{i} are required, once")
        out.append(Media(url[0], kind[0].split(";", 1)[0].strip().lower()))
    return tuple(out)


class MediaAnswers:
    """One per gateway process: turns media messages into turns, or into the reply that refuses them."""

    def __init__(
        self,
        store: MediaStore,
        fetcher: MediaFetcher,
        transcriber: Transcriber,
        images: ImageSettings,
        audio_max_bytes: int,
        voice_max_seconds: float,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._transcriber = transcriber
        self._images = images
        self._audio_max = audio_max_bytes
        self._voice_max = voice_max_seconds

    async def close(self) -> None:
        await self._fetcher.close()
        await self._transcriber.close()

    async def prepare(self, media: Sequence[Media], caption: str, model: str) -> Prepared | str:
        """The turn to run for a media message, or the reply to send instead (nothing stored)."""
        first = media[0].content_type
        kind = "voice" if first.startswith("audio/") else "image"
        try:
            if first.startswith("audio/"):
                return await self._voice(media[0])
            if first.startswith("image/") and all(m.content_type.startswith("image/") for m in media):
                return await self._image(media, caption, model)
            raise replies.MediaRefused(f"media of type {first!r}", replies.UNSUPPORTED_MEDIA, "type")
        except replies.MediaRefused as exc:
            metrics.media(kind, exc.reason)
            log.info("WhatsApp %s refused: %s", kind, exc.message)
            return exc.reply
        except PermissionDenied as exc:  # a MediaUrl that is not this account's media on Twilio
            metrics.media(kind, "ssrf")
            log.warning("WhatsApp %s refused: %s", kind, exc.message)
            return replies.FETCH_FAILED
        except ChatServiceError as exc:
            metrics.media(kind, "failed")
            log.warning("WhatsApp %s failed (%s): %s", kind, exc.code, exc.message)
            return reply_for(exc) if kind == "voice" else replies.FETCH_FAILED

    async def _voice(self, item: Media) -> Prepared:
        fetched = await self._fetcher.fetch(item.url, AUDIO_TYPES, self._audio_max, replies.AUDIO_TOO_LARGE)
        check_duration(fetched.data, self._voice_max)
        text = await self._transcriber.transcribe(fetched.data, fetched.content_type)
        turn_id = uuid.uuid4().hex

        async def started(event: TurnStarted) -> None:
            spoken = _record(event, turn_id, MediaKind.VOICE, fetched, transcript=text)
            await self._store.add_media([spoken])
            metrics.media("voice", "answered")

        return Prepared(text, Extras(turn_id, prompt=self.window_images), started)

    async def _image(self, media: Sequence[Media], caption: str, model: str) -> Prepared:
        s = self._images
        got: list[tuple[Fetched, CheckedImage]] = []
        if not sees_images(model, s.vision):  # before anything is fetched
            why = f"model {model!r} does not take images"
            raise replies.MediaRefused(why, replies.CANNOT_SEE_IMAGES, "no_vision")
        for item in media:
            fetched = await self._fetcher.fetch(item.url, IMAGE_TYPES, s.max_bytes, replies.IMAGE_TOO_LARGE)
            got.append((fetched, check_image(fetched.data, model, s)))
        turn_id = uuid.uuid4().hex
        records: list[MediaRecord] = []

        async def started(event: TurnStarted) -> None:
            records[:] = [
                _record(event, turn_id, MediaKind.IMAGE, f, data=f.data, content_type=c.content_type,
                        width=c.width, height=c.height, tokens=c.tokens)
                for f, c in got
            ]  # fmt: skip
            await self._store.add_media(records)
            metrics.media("image", "answered")

        tokens = sum(c.tokens for _, c in got)
        return Prepared(caption.strip() or NO_CAPTION, Extras(turn_id, tokens, self.window_images), started)

    async def window_images(self, plan: TurnPlan) -> TurnPlan:
        """The plan with each image message of the window as parts (the turn's own stored at its start)."""
        if not plan.seqs or not sees_images(plan.params.model, self._images.vision):
            return plan
        users = [seq for seq, m in zip(plan.seqs, plan.messages, strict=True) if m.get("role") == "user"]
        media = await self._store.media_for(plan.chat_id, users)
        if not any(m.kind is MediaKind.IMAGE for found in media.values() for m in found):
            return plan
        return replace(
            plan, messages=tuple(with_images(plan.messages, plan.seqs, media, self._images.detail))
        )


def _record(
    event: TurnStarted, turn_id: str, kind: MediaKind, fetched: Fetched, **fields: Any
) -> MediaRecord:
    fields.setdefault("content_type", fetched.content_type)
    return MediaRecord(
        "ME" + uuid.uuid4().hex, event.chat_id, turn_id, kind, size=len(fetched.data),
        seq=event.user_message_id, **fields,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signed, claimed webhook delivery: one message, perhaps with media."""

    sid: str
    sender: str
    to: str
    body: str
    media: tuple[Media, ...] = ()
