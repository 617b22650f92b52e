"""Data a migration's SQL cannot compute: the search grams of the rows stored before migration 3."""

from __future__ import annotations

import sqlite3
from typing import Any

from store.search import grams

GRAMS_VERSION = 3  # 0003_message_tree adds the grams columns
BATCH = 500


def sqlite_after(version: int, conn: sqlite3.Connection) -> None:
    """Run inside the migration's transaction, right after `version`'s statements."""
    if version != GRAMS_VERSION:
        return
    for table, text, column in (("chats", "title", "title_grams"), ("messages", "content", "content_grams")):
        last = 0
        while rows := conn.execute(
            f"SELECT rowid, {text} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, BATCH)
        ).fetchall():
            last = rows[-1][0]
            found = [(g, rowid) for rowid, value in rows if (g := grams(value))]
            conn.executemany(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", found)


async def mysql_after(version: int, cur: Any) -> None:
    """Run on the migration's connection (autocommit), right after `version`'s statements."""
    if version != GRAMS_VERSION:
        return
    last = ""
    while True:
        await cur.execute("SELECT id, title FROM chats WHERE id > %s ORDER BY id LIMIT %s", (last, BATCH))
        rows = await cur.fetchall()
        if not rows:
            break
        last = rows[-1][0]
        await _update(
            cur,
            "UPDATE chats SET title_grams = %s WHERE id = %s",
            [(g, i) for i, t in rows if (g := grams(t))],
        )
    chat, seq = "", 0
    while True:
        await cur.execute(
            "SELECT chat_id, seq, content FROM messages WHERE chat_id > %s OR (chat_id = %s AND seq > %s)"
            " ORDER BY chat_id, seq LIMIT %s",
            (chat, chat, seq, BATCH),
        )
        rows = await cur.fetchall()
        if not rows:
            break
        chat, seq = rows[-1][0], rows[-1][1]
        found = [(g, c, s) for c, s, content in rows if (g := grams(content))]
        await _update(cur, "UPDATE messages SET content_grams = %s WHERE chat_id = %s AND seq = %s", found)


async def _update(cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await cur.executemany(sql, rows)
