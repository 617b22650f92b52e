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
    last = ""
    while True:
        await cur.execute(
            "SELECT id, title, user_id FROM chats WHERE id > %s ORDER BY id LIMIT %s", (last, BATCH)
        )
        rows = await cur.fetchall()
        if not rows:
            break
        last = rows[-1][0]
        found = [(keys(title, owner), chat_id) for chat_id, title, owner in rows]
        await cur.executemany("UPDATE chats SET title_keys = %s WHERE id = %s", found)
    chat, seq = "", 0
    while True:
        await cur.execute(
            "SELECT m.chat_id, m.seq, m.content, c.user_id FROM messages m JOIN chats c ON c.id = m.chat_id"
            " WHERE m.chat_id > %s OR (m.chat_id = %s AND m.seq > %s) ORDER BY m.chat_id, m.seq LIMIT %s",
            (chat, chat, seq, BATCH),
        )
        rows = await cur.fetchall()
        if not rows:
            break
        chat, seq = rows[-1][0], rows[-1][1]
        updates = [(keys(content, owner), c, s) for c, s, content, owner in rows]
        await cur.executemany(
            "UPDATE messages SET content_keys = %s WHERE chat_id = %s AND seq = %s", updates
        )
