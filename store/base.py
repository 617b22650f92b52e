"""The ChatStore port: everything the service persists goes through these methods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from store.records import ChatRecord, ChatStatus, MessageRecord, SearchHit

MAX_ID_LENGTH = 128
MAX_MODEL_LENGTH = 128
MAX_TITLE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ChatCursor:
    """Position in a user's chat list (newest first): the last chat of the previous page."""

    created_at: datetime
    chat_id: str


class ChatStore(Protocol):
    """A chat and its tree of messages, written atomically and versioned per chat.

    Each message has a parent (`parent_seq`, a smaller seq; None for a root), so a chat's
    messages form a tree; the chat's `active_leaf` ends the path it shows and the model sees.

    Every write that changes a chat takes the version the writer last saw and fails with
    StaleState when the stored version differs, so a stale activation cannot overwrite newer state.
    Every failure to reach the database is raised as Unavailable.
    """

    async def ping(self) -> None: ...

    async def max_connections(self) -> int | None:
        """How many connections the database server accepts in all (None: no such limit)."""

    async def close(self) -> None: ...

    async def create_chat(self, chat: ChatRecord, messages: Sequence[MessageRecord]) -> None:
        """Insert a chat (version as given) with its first messages; AlreadyExists if the id is taken.

        The first messages are a chain in seq order: each one's parent is the message before it
        (set here when None), and the chat's active leaf is the last of them.
        """

    async def get_chat(self, chat_id: str) -> ChatRecord | None: ...

    async def list_chats(self, user_id: str, limit: int, after: ChatCursor | None = None) -> list[ChatRecord]:
        """A user's chats, newest first, starting after `after`."""

    async def list_messages(
        self, chat_id: str, *, include_erased: bool = False, after_seq: int = 0, limit: int | None = None
    ) -> list[MessageRecord]:
        """All of a chat's messages, every branch, in seq order, with seq greater than `after_seq`."""

    async def list_path(
        self,
        chat_id: str,
        *,
        leaf: int | None = None,
        include_erased: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        """The messages from the root down to `leaf` (None: the active leaf), seq > `after_seq`.

        Without erased messages this is the window a conversation rebuilds on activation.
        NotFound if the chat holds no message `leaf`; empty for a chat without messages or none.
        """

    async def siblings(self, chat_id: str, seqs: Sequence[int]) -> dict[int, tuple[int, ...]]:
        """For each of `seqs`, the seqs of the messages with its parent (itself included), in order.

        Its siblings count is the tuple's length; its position, its index in it plus one.
        """

    async def leaf_under(self, chat_id: str, seq: int) -> int:
        """The leaf a switch to message `seq` leads to: follow the newest child down from it.

        NotFound if the chat holds no message `seq`.
        """

    async def last_seq(self, chat_id: str) -> int:
        """The largest seq in the chat, on any branch (0 without messages): a new message takes the next."""

    async def search_chats(
        self, user_id: str, query: str, limit: int, after: ChatCursor | None = None
    ) -> list[SearchHit]:
        """A user's chats whose title or one message holds every word of `query`, newest first.

        Paged like list_chats. InvalidArgument for a query with nothing searchable in it
        (see store/search.py for what is: words of 3+ characters, Chinese or Japanese characters).
        """

    async def write(
        self,
        chat_id: str,
        expected_version: int,
        *,
        append: Sequence[MessageRecord] = (),
        erase: Sequence[int] = (),
        title: str | None = None,
        status: ChatStatus | None = None,
        active_leaf: int | None = None,
        rename: str | None = None,
        remove: Sequence[int] = (),
    ) -> int:
        """Apply one change atomically and return the chat's new version.

        `title` is set only if the chat has none yet; `rename` replaces the title (`""` clears
        it). `active_leaf` becomes the chat's active leaf (by default the last appended message;
        unchanged without one). Appended messages' parents and the active leaf must be messages of
        the chat (InvalidArgument otherwise, with nothing written). `erase` flags messages out of
        the window (they stay listed as erased); `remove` deletes messages outright (a withdrawn
        turn's), and an active leaf removed moves up to the nearest parent that stays.
        """

    async def delete_chat(self, chat_id: str) -> bool:
        """Delete a chat, its messages and their search entries; False if there was none."""

    async def claim_event(self, event_id: str, source: str) -> bool:
        """Record an inbound event (a webhook delivery id) once: True for the first claim, False after."""
