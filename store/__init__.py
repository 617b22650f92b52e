"""Persistence: the ChatStore port and its MySQL (asyncmy) and SQLite implementations."""

from __future__ import annotations

from store.base import ChatCursor, ChatStore
from store.url import DatabaseURL

__all__ = ["ChatCursor", "ChatStore", "DatabaseURL", "open_store"]


def open_store(url: DatabaseURL, pool_size: int = 1) -> ChatStore:
    """A store for the URL; MySQL connections open lazily, at most `pool_size` of them."""
    from store.sql import SqlChatStore

    if url.kind == "sqlite":
        from store.sqlite import SQLiteDatabase

        return SqlChatStore(SQLiteDatabase(url.path), url.kind)
    from store.mysql import MySQLDatabase

    return SqlChatStore(MySQLDatabase(url, pool_size), url.kind)
