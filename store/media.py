"""WhatsApp media and delivery status: the records, the status order, and the MediaStore port."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from store.records import utcnow


class MediaKind(enum.StrEnum):
    VOICE = "voice"  # the message's text is its transcript
    IMAGE = "image"  # the message's text is the caption; the bytes are kept


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """One media item of a user message; `seq` is None until the message is stored."""

    id: str
    chat_id: str
    turn_id: str
    kind: MediaKind
    content_type: str
    size: int
    data: bytes | None = None  # an image's bytes; a voice note keeps none
    transcript: str | None = None
    width: int | None = None
    height: int | None = None
    tokens: int = 0  # what it adds to its message's tokens in the window
    seq: int | None = None
    created_at: datetime = field(default_factory=utcnow)


class DeliveryStatus(enum.StrEnum):
    """Twilio's outbound message statuses, and WITHHELD: a part this service chose not to send."""

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELED = "canceled"
    WITHHELD = "withheld"


# Progress of a message on its way; a final status never changes again.
_RANK = {
    DeliveryStatus.ACCEPTED: 0,
    DeliveryStatus.SCHEDULED: 0,
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENDING: 2,
    DeliveryStatus.SENT: 3,
    DeliveryStatus.DELIVERED: 4,
}
FINAL = frozenset(set(DeliveryStatus) - set(_RANK))
FAILURES = frozenset({DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED})


def advances(old: DeliveryStatus, new: DeliveryStatus) -> bool:
    """Whether a callback saying `new` moves a message that is at `old` (they arrive out of order).

    A final status (read, failed, undelivered, canceled) stays; one reached from any other wins;
    otherwise only a later step counts: `sent` after `delivered` is an old callback, ignored.
    """
    if old in FINAL:
        return False
    return new in FINAL or _RANK[new] > _RANK[old]


def replaceable_by(new: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    """The statuses a stored message may be at for `new` to replace it."""
    return tuple(old for old in DeliveryStatus if advances(old, new))


class OutboundKind(enum.StrEnum):
    TEXT = "text"
    TEMPLATE = "template"  # sent as WHATSAPP_TEMPLATE_SID after the 24-hour window closed


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A message part sent through Twilio's REST API (or withheld) and its latest status."""

    sid: str
    chat_id: str | None
    reply_to: str | None  # the inbound MessageSid it answers
    part: int | None  # 0-based index among the answer's parts
    kind: OutboundKind
    status: DeliveryStatus
    error_code: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


class MediaStore(Protocol):
    """Media of user messages and the delivery status of outbound WhatsApp messages."""

    async def add_media(self, media: Sequence[MediaRecord]) -> None:
        """Insert media rows (before their turn begins); AlreadyExists if an id is taken."""

    async def attach_media(self, chat_id: str, media_ids: Sequence[str], seq: int) -> int:
        """Tie media to the stored message `seq`; returns how many rows were tied."""

    async def media_for(self, chat_id: str, seqs: Sequence[int]) -> dict[int, list[MediaRecord]]:
        """The media of the messages `seqs`, by seq, each list in id order.

        Only rows whose message is stored with the same turn id count.
        """

    async def drop_media(self, chat_id: str, turn_id: str) -> int:
        """Delete the media of a turn that stored no message; returns how many rows went."""

    async def record_sent(self, record: OutboundRecord) -> OutboundRecord:
        """Record a part handed to Twilio (or withheld); a callback that came first keeps its status
        if it is further along. Returns the row as stored."""

    async def record_status(self, sid: str, status: DeliveryStatus, error_code: int | None) -> OutboundRecord:
        """Apply a status callback if it advances the message (see `advances`); returns the row."""

    async def delivery(self, sid: str) -> OutboundRecord | None: ...

    async def outbound_of(self, chat_id: str) -> list[OutboundRecord]:
        """A chat's outbound parts, oldest answer first, parts in order."""

    async def last_inbound(self, source: str) -> datetime | None:
        """When the newest webhook delivery claimed for `source` (a WhatsApp sender) arrived."""
