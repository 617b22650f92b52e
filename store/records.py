"""Plain records the store reads and writes: chats, their parameters, their messages, search hits."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    # Microsecond precision is what DATETIME(6) keeps; truncating here makes round trips exact.
    return datetime.now(UTC).replace(tzinfo=None)


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class ChatStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class MessageStatus(enum.StrEnum):
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ChatParams:
    """The model and sampling parameters a chat was created with."""

    model: str
    context_tokens: int
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: str
    user_id: str
    params: ChatParams
    status: ChatStatus = ChatStatus.ACTIVE
    title: str = ""
    version: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    active_leaf: int | None = None  # the newest message of the path the chat shows (None: no messages)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    chat_id: str
    seq: int
    role: Role
    content: str
    tokens: int
    turn_id: str | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    finish_reason: str | None = None
    erased: bool = False
    created_at: datetime = field(default_factory=utcnow)
    parent_seq: int | None = None  # the message this one follows (None: a first message, a root)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A chat found by a search: the newest message that matched (None if only the title did)."""

    chat: ChatRecord
    seq: int | None
    snippet: str
