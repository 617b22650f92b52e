"""ChatStore over any SQL database driver: the queries, once, with %s parameters."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from store import sql_search, tree
from store.base import MAX_TITLE_LENGTH, ChatCursor
from store.errors import AlreadyExists, InvalidArgument, NotFound, StaleState
from store.records import ChatRecord, ChatStatus, MessageRecord, SearchHit, utcnow
from store.rows import (
    CHAT_COLUMNS,
    MESSAGE_COLUMNS,
    chat_from,
    insert_chat,
    insert_messages,
    message_from,
    placeholders,
)
from store.search import keys

if TYPE_CHECKING:
    from store.sql_media import SqlMediaStore

Row = tuple[Any, ...]


class Transaction(Protocol):
    """One open transaction; statements use %s placeholders and are always parameterised."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...


class Database(Protocol):
    """A driver adapter: opens transactions and maps driver errors to the error tree."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def max_connections(self) -> int | None: ...

    async def close(self) -> None: ...


class SqlChatStore:
    """The ChatStore implementation shared by MySQL and SQLite."""

    def __init__(self, db: Database, dialect: str) -> None:
        self._db = db
        self._dialect = dialect  # "mysql" or "sqlite": only search is written per engine

    async def ping(self) -> None:
        async with self._db.transaction() as tx:
            await tx.fetchall("SELECT 1")

    async def close(self) -> None:
        await self._db.close()

    @property
    def media(self) -> SqlMediaStore:
        """WhatsApp media and delivery status, over this store's connections."""
        from store.sql_media import SqlMediaStore

        return SqlMediaStore(self._db)

    async def max_connections(self) -> int | None:
        return await self._db.max_connections()

    async def create_chat(self, chat: ChatRecord, messages: Sequence[MessageRecord]) -> None:
        chain = tree.chained(chat.id, messages)
        leaf = chain[-1].seq if chain else None
        if chat.active_leaf not in (None, leaf):
            raise InvalidArgument(f"chat {chat.id!r}: a new chat's active leaf is its last message")
        _check_title(chat.title)
        try:
            async with self._db.transaction() as tx:
                await insert_chat(tx, replace(chat, active_leaf=leaf))
                await insert_messages(tx, chain, chat.user_id)
        except AlreadyExists:
            raise AlreadyExists(f"chat {chat.id!r} already exists") from None

    async def get_chat(self, chat_id: str) -> ChatRecord | None:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(f"SELECT {CHAT_COLUMNS} FROM chats WHERE id = %s", (chat_id,))
        return chat_from(rows[0]) if rows else None

    async def list_chats(self, user_id: str, limit: int, after: ChatCursor | None = None) -> list[ChatRecord]:
        # MySQL's _bin collations pad with spaces ('u' = 'u '): equal lengths make the match exact.
        sql = f"SELECT {CHAT_COLUMNS} FROM chats WHERE user_id = %s AND LENGTH(user_id) = LENGTH(%s)"
        args: list[Any] = [user_id, user_id]
        if after is not None:
            sql += " AND (created_at < %s OR (created_at = %s AND id < %s))"
            args += [after.created_at, after.created_at, after.chat_id]
        sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(sql, [*args, limit])
        return [chat_from(r) for r in rows]

    async def list_messages(
        self, chat_id: str, *, include_erased: bool = False, after_seq: int = 0, limit: int | None = None
    ) -> list[MessageRecord]:
        sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = %s AND seq > %s"
        args: list[Any] = [chat_id, after_seq]
        if not include_erased:
            sql += " AND erased = 0"
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(sql, args)
        return [message_from(r) for r in rows]

    async def list_path(
        self,
        chat_id: str,
        *,
        leaf: int | None = None,
        include_erased: bool = False,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        async with self._db.transaction() as tx:
            return await tree.path(
                tx, chat_id, leaf, include_erased=include_erased, after_seq=after_seq, limit=limit
            )

    async def siblings(self, chat_id: str, seqs: Sequence[int]) -> dict[int, tuple[int, ...]]:
        async with self._db.transaction() as tx:
            return await tree.siblings(tx, chat_id, seqs)

    async def leaf_under(self, chat_id: str, seq: int) -> int:
        async with self._db.transaction() as tx:
            return await tree.leaf_under(tx, chat_id, seq)

    async def last_seq(self, chat_id: str) -> int:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall("SELECT MAX(seq) FROM messages WHERE chat_id = %s", (chat_id,))
        return int(rows[0][0] or 0)

    async def search_chats(
        self, user_id: str, query: str, limit: int, after: ChatCursor | None = None
    ) -> list[SearchHit]:
        found = sql_search.checked(query, limit)  # before a transaction is opened
        async with self._db.transaction() as tx:
            return await sql_search.search_chats(tx, self._dialect, user_id, found, limit, after)

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
        leaf = active_leaf if active_leaf is not None else (append[-1].seq if append else None)
        wanted = tree.needed(chat_id, append, leaf)  # InvalidArgument before anything is sent
        _check_titles(title, rename)
        keyed = bool(append) or title is not None or rename is not None  # keys hold the owner's token
        async with self._db.transaction() as tx:
            # Read before the UPDATE: its version check tells whether anything changed since.
            owner, missing = (
                await tree.owner_and_missing(tx, chat_id, wanted) if keyed or wanted else ("", set())
            )
            sets, args = _chat_changes(title, rename, status, leaf, owner or "")
            if remove and active_leaf is None and not append:
                sets.append("active_leaf = %s")
                args.append(await tree.leaf_after_removal(tx, chat_id, remove))
            changed = await tx.execute(
                f"UPDATE chats SET {', '.join(sets)} WHERE id = %s AND version = %s",
                [*args, chat_id, expected_version],
            )
            if changed != 1:
                await self._raise_write_conflict(tx, chat_id, expected_version)
            if missing:
                raise InvalidArgument(f"chat {chat_id!r} has no message {min(missing)}")
            await insert_messages(tx, append, owner or "")
            if erase:
                await tx.execute(
                    "UPDATE messages SET erased = 1 WHERE chat_id = %s"
                    f" AND seq IN ({placeholders(len(erase))})",
                    [chat_id, *erase],
                )
            if remove:
                await tx.execute(
                    f"DELETE FROM messages WHERE chat_id = %s AND seq IN ({placeholders(len(remove))})",
                    [chat_id, *remove],
                )
        return expected_version + 1

    @staticmethod
    async def _raise_write_conflict(tx: Transaction, chat_id: str, expected: int) -> None:
        rows = await tx.fetchall("SELECT version FROM chats WHERE id = %s", (chat_id,))
        if not rows:
            raise NotFound(f"chat {chat_id!r} does not exist")
        raise StaleState(f"chat {chat_id!r} is at version {rows[0][0]}, not {expected}: reload and retry")

    async def delete_chat(self, chat_id: str) -> bool:
        async with self._db.transaction() as tx:
            # Messages go first so engines without ON DELETE CASCADE enforcement behave the same.
            await tx.execute("DELETE FROM messages WHERE chat_id = %s", (chat_id,))
            await tx.execute("DELETE FROM media WHERE chat_id = %s", (chat_id,))
            await tx.execute("DELETE FROM outbound_messages WHERE chat_id = %s", (chat_id,))
            return await tx.execute("DELETE FROM chats WHERE id = %s", (chat_id,)) == 1

    async def claim_event(self, event_id: str, source: str) -> bool:
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO webhook_events (event_id, source, created_at) VALUES (%s, %s, %s)",
                    (event_id, source, utcnow()),
                )
        except AlreadyExists:
            return False
        return True


def _check_title(title: str) -> None:
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidArgument(f"a title is at most {MAX_TITLE_LENGTH} characters, got {len(title)}")


def _check_titles(title: str | None, rename: str | None) -> None:
    if title is not None and rename is not None:
        raise InvalidArgument("a write either names an untitled chat or renames it, not both")
    for text in (title, rename):
        if text is not None:
            _check_title(text)


def _chat_changes(
    title: str | None, rename: str | None, status: ChatStatus | None, leaf: int | None, owner: str
) -> tuple[list[str], list[Any]]:
    """The SET clauses (and their arguments) of a write's UPDATE of the chat row."""
    sets = ["version = version + 1", "updated_at = %s"]
    args: list[Any] = [utcnow()]
    if title is not None:
        # title_keys first: MySQL evaluates SET left to right, with the new title in view after it.
        sets.append("title_keys = CASE WHEN title = '' THEN %s ELSE title_keys END")
        sets.append("title = CASE WHEN title = '' THEN %s ELSE title END")
        args += [keys(title, owner), title]
    if rename is not None:
        sets.append("title = %s, title_keys = %s")
        args += [rename, keys(rename, owner)]
    if status is not None:
        sets.append("status = %s")
        args.append(status.value)
    if leaf is not None:
        sets.append("active_leaf = %s")
        args.append(leaf)
    return sets, args
