"""Search of a user's chats in SQL: MySQL/MariaDB FULLTEXT or SQLite FTS5, one query shape for both.

A chat is a hit when its title, or one of its messages, holds every term of the query (see
store/search.py). Hits come newest chat first, paged like list_chats; each names the newest
matching message of the chat (on any branch, erased ones included: the page still shows them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.base import ChatCursor
from store.errors import InvalidArgument
from store.records import ChatRecord, SearchHit
from store.rows import CHAT_COLUMNS, chat_from, columns, placeholders
from store.search import Term, boolean_query, fts5_query, snippet, terms

if TYPE_CHECKING:
    from store.sql import Transaction


def _title_match(dialect: str) -> str:
    if dialect == "mysql":
        return "MATCH(c.title, c.title_keys) AGAINST (%s IN BOOLEAN MODE)"
    return "c.rowid IN (SELECT rowid FROM chats_fts WHERE chats_fts MATCH %s)"


def _message_match(dialect: str, alias: str) -> str:
    if dialect == "mysql":
        return f"MATCH({alias}.content, {alias}.content_keys) AGAINST (%s IN BOOLEAN MODE)"
    return f"{alias}.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH %s)"


def checked(query: str, limit: int) -> list[Term]:
    """The query's terms; InvalidArgument for a query or a page size that cannot be searched."""
    if limit < 1:
        raise InvalidArgument(f"a page holds at least one chat, got {limit}")
    return terms(query)


async def search_chats(
    tx: Transaction, dialect: str, user_id: str, found: list[Term], limit: int, after: ChatCursor | None
) -> list[SearchHit]:
    match = (boolean_query if dialect == "mysql" else fts5_query)(found, user_id)
    # The owner compared exactly, as list_chats does ('u' = 'u ' under PAD SPACE collations).
    sql = (
        f"SELECT {columns(CHAT_COLUMNS, 'c')} FROM chats c"
        " WHERE c.user_id = %s AND LENGTH(c.user_id) = LENGTH(%s)"
    )
    args: list[Any] = [user_id, user_id]
    if after is not None:
        sql += " AND (c.created_at < %s OR (c.created_at = %s AND c.id < %s))"
        args += [after.created_at, after.created_at, after.chat_id]
    sql += (
        f" AND ({_title_match(dialect)}"
        f" OR c.id IN (SELECT m.chat_id FROM messages m WHERE {_message_match(dialect, 'm')}))"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT %s"
    )
    chats = [chat_from(r) for r in await tx.fetchall(sql, [*args, match, match, limit])]
    newest = await _newest_matches(tx, dialect, [c.id for c in chats], match)
    return [_hit(chat, newest.get(chat.id), found) for chat in chats]


async def _newest_matches(
    tx: Transaction, dialect: str, chat_ids: list[str], match: str
) -> dict[str, tuple[int, str]]:
    """For each chat, its newest message holding every term: (seq, content)."""
    if not chat_ids:
        return {}
    rows = await tx.fetchall(
        "SELECT m.chat_id, m.seq, m.content FROM messages m JOIN ("
        " SELECT h.chat_id AS chat_id, MAX(h.seq) AS seq FROM messages h"
        f" WHERE h.chat_id IN ({placeholders(len(chat_ids))}) AND {_message_match(dialect, 'h')}"
        " GROUP BY h.chat_id) newest ON m.chat_id = newest.chat_id AND m.seq = newest.seq",
        [*chat_ids, match],
    )
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def _hit(chat: ChatRecord, newest: tuple[int, str] | None, found: list[Term]) -> SearchHit:
    if newest is None:
        return SearchHit(chat, None, snippet(chat.title, found))
    seq, content = newest
    return SearchHit(chat, seq, snippet(content, found))
