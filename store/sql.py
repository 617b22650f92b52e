"""ChatStore over any SQL database driver: the queries, once, with %s parameters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from store.base import ChatCursor
from store.errors import AlreadyExists, NotFound, StaleState
from store.records import (
    ChatParams,
    ChatRecord,
    ChatStatus,
    MessageRecord,
    MessageStatus,
    Role,
    utcnow,
)

Row = tuple[Any, ...]

CHAT_COLUMNS = (
    "id, user_id, status, title, model, context_tokens, max_tokens, temperature, top_p, n, "
    "stop_json, presence_penalty, frequency_penalty, version, created_at, updated_at"
)
MESSAGE_COLUMNS = "chat_id, seq, role, content, tokens, turn_id, status, finish_reason, erased, created_at"


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


def _dt(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _chat_row(chat: ChatRecord) -> tuple[Any, ...]:
    p = chat.params
    return (
        chat.id,
        chat.user_id,
        chat.status.value,
        chat.title,
        p.model,
        p.context_tokens,
        p.max_tokens,
        p.temperature,
        p.top_p,
        p.n,
        json.dumps(list(p.stop)),
        p.presence_penalty,
        p.frequency_penalty,
        chat.version,
        chat.created_at,
        chat.updated_at,
    )


def _chat_from(row: Row) -> ChatRecord:
    params = ChatParams(
        model=row[4],
        context_tokens=int(row[5]),
        max_tokens=int(row[6]),
        temperature=row[7],
        top_p=row[8],
        n=int(row[9]),
        stop=tuple(json.loads(row[10])),
        presence_penalty=row[11],
        frequency_penalty=row[12],
    )
    return ChatRecord(
        id=row[0],
        user_id=row[1],
        status=ChatStatus(row[2]),
        title=row[3],
        params=params,
        version=int(row[13]),
        created_at=_dt(row[14]),
        updated_at=_dt(row[15]),
    )


def _message_row(m: MessageRecord) -> tuple[Any, ...]:
    return (
        m.chat_id,
        m.seq,
        m.role.value,
        m.content,
        m.tokens,
        m.turn_id,
        m.status.value,
        m.finish_reason,
        int(m.erased),
        m.created_at,
    )


def _message_from(row: Row) -> MessageRecord:
    return MessageRecord(
        chat_id=row[0],
        seq=int(row[1]),
        role=Role(row[2]),
        content=row[3],
        tokens=int(row[4]),
        turn_id=row[5],
        status=MessageStatus(row[6]),
        finish_reason=row[7],
        erased=bool(row[8]),
        created_at=_dt(row[9]),
    )


async def _insert_messages(tx: Transaction, messages: Sequence[MessageRecord]) -> None:
    if messages:
        await tx.executemany(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})",
            [_message_row(m) for m in messages],
        )


class SqlChatStore:
    """The ChatStore implementation shared by MySQL and SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ping(self) -> None:
        async with self._db.transaction() as tx:
            await tx.fetchall("SELECT 1")

    async def close(self) -> None:
        await self._db.close()

    async def max_connections(self) -> int | None:
        return await self._db.max_connections()

    async def create_chat(self, chat: ChatRecord, messages: Sequence[MessageRecord]) -> None:
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    f"INSERT INTO chats ({CHAT_COLUMNS}) VALUES ({', '.join(['%s'] * 16)})",
                    _chat_row(chat),
                )
                await _insert_messages(tx, messages)
        except AlreadyExists:
            raise AlreadyExists(f"chat {chat.id!r} already exists") from None

    async def get_chat(self, chat_id: str) -> ChatRecord | None:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(f"SELECT {CHAT_COLUMNS} FROM chats WHERE id = %s", (chat_id,))
        return _chat_from(rows[0]) if rows else None

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
        return [_chat_from(r) for r in rows]

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
        return [_message_from(r) for r in rows]

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
        sets = ["version = version + 1", "updated_at = %s"]
        args: list[Any] = [utcnow()]
        if title is not None:
            sets.append("title = CASE WHEN title = '' THEN %s ELSE title END")
            args.append(title)
        if reset_title:
            sets.append("title = ''")
        if status is not None:
            sets.append("status = %s")
            args.append(status.value)
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE chats SET {', '.join(sets)} WHERE id = %s AND version = %s",
                [*args, chat_id, expected_version],
            )
            if changed != 1:
                await self._raise_write_conflict(tx, chat_id, expected_version)
            await _insert_messages(tx, append)
            if erase:
                await tx.execute(
                    "UPDATE messages SET erased = 1 WHERE chat_id = %s AND seq IN "
                    f"({', '.join(['%s'] * len(erase))})",
                    [chat_id, *erase],
                )
            if remove:
                await tx.execute(
                    f"DELETE FROM messages WHERE chat_id = %s AND seq IN ({', '.join(['%s'] * len(remove))})",
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
