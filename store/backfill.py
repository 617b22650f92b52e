"""Data a migration's SQL cannot compute: the search keys of the rows stored before migration 3."""

from __future__ import annotations

import sqlite3
from typing import Any

from store.search import keys

KEYS_VERSION = 3  # 0003_message_tree adds the keys columns; 0004_search indexes them
BATCH = 500


def sqlite_after(version: int, conn: sqlite3.Connection) -> None:
    """Run inside the migration's transaction, right after `version`'s statements."""
    if version != KEYS_VERSION:
        return
    for sql, update in (
        (
            "SELECT rowid, title, user_id FROM chats WHERE rowid > ? ORDER BY rowid LIMIT ?",
            "UPDATE chats SET title_keys = ? WHERE rowid = ?",
        ),
        (
            "SELECT m.rowid, m.content, c.user_id FROM messages m JOIN chats c ON c.id = m.chat_id"
            " WHERE m.rowid > ? ORDER BY m.rowid LIMIT ?",
            "UPDATE messages SET content_keys = ? WHERE rowid = ?",
        ),
    ):
        last = 0
        while rows := conn.execute(sql, (last, BATCH)).fetchall():
            last = rows[-1][0]
            conn.executemany(update, [(keys(text, owner), rowid) for rowid, text, owner in rows])


async def mysql_after(version: int, cur: Any) -> None:
    """Run on the migration's connection (autocommit), right after `version`'s statements."""
    if version != KEYS_VERSION:
        return
    # Each batch goes to a temporary table in one multi-row INSERT, then into place by one UPDATE:
    # an UPDATE per row costs a round trip (and, autocommitted, a commit) per message.
    await cur.execute(
        "CREATE TEMPORARY TABLE backfill_keys (chat_id VARCHAR(128) NOT NULL, seq INT UNSIGNED NOT NULL,"
        " search_keys MEDIUMTEXT NULL, PRIMARY KEY (chat_id, seq))"
        " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )
    last = ""
    while rows := await _fetch(
        cur, "SELECT id, 0, title, user_id FROM chats WHERE id > %s ORDER BY id LIMIT %s", (last, BATCH)
    ):
        last = rows[-1][0]
        await _put(
            cur,
            rows,
            "UPDATE chats c JOIN backfill_keys k ON k.chat_id = c.id SET c.title_keys = k.search_keys",
        )
    chat, seq = "", 0
    while rows := await _fetch(
        cur,
        "SELECT m.chat_id, m.seq, m.content, c.user_id FROM messages m JOIN chats c ON c.id = m.chat_id"
        " WHERE m.chat_id > %s OR (m.chat_id = %s AND m.seq > %s) ORDER BY m.chat_id, m.seq LIMIT %s",
        (chat, chat, seq, BATCH),
    ):
        chat, seq = rows[-1][0], rows[-1][1]
        await _put(
            cur,
            rows,
            "UPDATE messages m JOIN backfill_keys k ON k.chat_id = m.chat_id AND k.seq = m.seq"
            " SET m.content_keys = k.search_keys",
        )
    await cur.execute("DROP TEMPORARY TABLE backfill_keys")


async def _fetch(cur: Any, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    await cur.execute(sql, args)
    return list(await cur.fetchall())


async def _put(cur: Any, rows: list[tuple[Any, ...]], update: str) -> None:
    """Each row is (chat id, seq, text, owner); `update` copies backfill_keys into place."""
    await cur.executemany(
        "INSERT INTO backfill_keys (chat_id, seq, search_keys) VALUES (%s, %s, %s)",
        [(chat_id, seq, keys(text, owner)) for chat_id, seq, text, owner in rows],
    )
    await cur.execute(update)
    await cur.execute("DELETE FROM backfill_keys")
