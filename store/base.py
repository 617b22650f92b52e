"""The ChatStore port: everything the service persists goes through these methods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from store.records import ChatRecord, ChatStatus, MessageRecord

MAX_ID_LENGTH = 128
MAX_MODEL_LENGTH = 128
MAX_TITLE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ChatCursor:
    """Position in a user's chat list (newest first): the last chat of the previous page."""

    created_at: datetime
    chat_id: str


class ChatStore(Protocol):
    """A chat and its ordered messages, written atomically and versioned per chat.

    Every write that changes a chat takes the version the writer last saw and fails with
    StaleState when the stored version differs, so a stale activation cannot overwrite newer state.
    Every failure to reach the database is raised as Unavailable.
    """

    async def ping(self) -> None: ...

    async def max_connections(self) -> int | None:
        """How many connections the database server accepts in all (None: no such limit)."""

    async def close(self) -> None: ...

    async def create_chat(self, chat: ChatRecord, messages: Sequence[MessageRecord]) -> None:
        """Insert a chat (version as given) with its first messages; AlreadyExists if the id is taken."""

    async def get_chat(self, chat_id: str) -> ChatRecord | None: ...

    async def list_chats(self, user_id: str, limit: int, after: ChatCursor | None = None) -> list[ChatRecord]:
        """A user's chats, newest first, starting after `after`."""

    async def list_messages(
        self, chat_id: str, *, include_erased: bool = False, after_seq: int = 0, limit: int | None = None
    ) -> list[MessageRecord]:
        """A chat's messages in order, with seq greater than `after_seq`."""

    async def write(
        self,
        chat_id: str,
        expected_version: int,
        *,
        append: Sequence[MessageRecord] = (),
        erase: Sequence[int] = (),
        title: str | None = None,
        status: ChatStatus | None = None,
        remove: Sequence[int] = (),
        reset_title: bool = False,
    ) -> int:
        """Apply one change atomically and return the chat's new version.

        `erase` flags messages out of the window (they stay listed as erased); `remove` deletes
        messages outright (a withdrawn turn's); `title` is set only if the chat has none yet, and
        `reset_title` clears it.
        """

    async def delete_chat(self, chat_id: str) -> bool:
        """Delete a chat and its messages; False if there was none."""

    async def claim_event(self, event_id: str, source: str) -> bool:
        """Record an inbound event (a webhook delivery id) once: True for the first claim, False after."""
