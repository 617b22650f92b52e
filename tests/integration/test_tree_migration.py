"""Migration 0003 on chats stored before it: each chat becomes one chain, its text searchable."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncmy
import pytest

from actors.conversation import Conversation
from actors.protocol import TurnPlan, TurnRequest
from store import DatabaseURL, backfill, open_store
from store.migrate import migrate, migrations
from store.records import utcnow

OLD_CHAT = (
    "INSERT INTO chats (id, user_id, status, title, model, context_tokens, max_tokens, temperature, top_p,"
    " n, stop_json, presence_penalty, frequency_penalty, version, created_at, updated_at)"
    " VALUES (%s, 'u-old', 'active', %s, 'gpt-4o-mini', 1000, 100, NULL, NULL, 1, '[]', NULL, NULL, %s, %s, %s)"
)
OLD_MESSAGE = (
    "INSERT INTO messages (chat_id, seq, role, content, tokens, turn_id, status, finish_reason, erased,"
    " created_at) VALUES (%s, %s, %s, %s, %s, NULL, 'complete', NULL, %s, %s)"
)
# Chat id -> (title, [(seq, role, content, erased)]): seqs need not be contiguous.
OLD = {
    "old-a": (
        "学习中文 notes",
        [
            (1, "system", "Be brief.", 0),
            (2, "user", "Olá, como vai?", 1),
            (3, "assistant", "我喜欢学习中文", 1),
            (4, "user", "Where is Lisboa?", 0),
            (5, "assistant", "In Portugal.", 0),
        ],
    ),
    "old-b": ("", []),
    "old-c": ("Gaps", [(1, "user", "one", 0), (2, "assistant", "two", 0), (5, "user", "five", 0)]),
}


@pytest.fixture(params=["sqlite", "mysql"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseURL]:
    """A database at migration 2 holding OLD, as the service stored chats before the tree."""
    if request.param == "sqlite":
        url = DatabaseURL.parse(f"sqlite:///{tmp_path / 'old.db'}")
        conn = sqlite3.connect(url.path, isolation_level=None)
        _old_schema(lambda sql, args=(): conn.execute(sql.replace("%s", "?"), args), "sqlite")
        conn.close()
        yield url
        return
    mysql_url: DatabaseURL = request.getfixturevalue("mysql_url")
    url = replace(mysql_url, database=f"{mysql_url.database}_m{uuid.uuid4().hex[:10]}")
    statements: list[tuple[str, Sequence[Any]]] = []
    _old_schema(lambda sql, args=(): statements.append((sql, args)), "mysql")
    asyncio.run(
        _on_server(
            url,
            [
                (f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4", ()),
                (f"USE `{url.database}`", ()),
                *statements,
            ],
        )
    )
    try:
        yield url
    finally:
        asyncio.run(_on_server(url, [(f"DROP DATABASE `{url.database}`", ())]))


async def _on_server(url: DatabaseURL, statements: list[tuple[str, Sequence[Any]]]) -> None:
    server = await asyncmy.connect(
        host=url.host, port=url.port, user=url.user, password=url.password, autocommit=True
    )
    try:
        async with server.cursor() as cur:
            for sql, args in statements:
                await cur.execute(sql, args)
    finally:
        await server.ensure_closed()


def _old_schema(run: Any, kind: str) -> None:
    run("CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL)")
    for m in migrations(kind):
        if m.version < 3:
            for statement in m.statements:
                run(statement)
            run("INSERT INTO schema_migrations VALUES (%s, %s)", (m.version, m.name))
    now = utcnow().isoformat(sep=" ")
    for chat_id, (title, messages) in OLD.items():
        run(OLD_CHAT, (chat_id, title, len(messages), now, now))
        for seq, role, content, erased in messages:
            run(OLD_MESSAGE, (chat_id, seq, role, content, len(content), erased, now))


async def test_existing_chats_become_chains_with_their_last_message_active(old_db: DatabaseURL) -> None:
    assert await migrate(old_db) == [m.version for m in migrations(old_db.kind) if m.version >= 3]
    store = open_store(old_db)
    try:
        a = await store.list_messages("old-a", include_erased=True)
        assert [(m.seq, m.parent_seq, m.erased) for m in a] == [
            (1, None, False),
            (2, 1, True),  # erased messages are links of the chain like the others
            (3, 2, True),
            (4, 3, False),
            (5, 4, False),
        ]
        assert [m.seq for m in await store.list_path("old-a")] == [1, 4, 5]  # the window it had
        assert [m.parent_seq for m in await store.list_messages("old-c")] == [None, 1, 2]
        leaves = {cid: (await store.get_chat(cid)).active_leaf for cid in OLD}  # type: ignore[union-attr]
        assert leaves == {"old-a": 5, "old-b": None, "old-c": 5}
        assert await store.list_path("old-b") == []
        assert await migrate(old_db) == []
    finally:
        await store.close()


async def test_existing_text_is_searchable_cjk_included(old_db: DatabaseURL) -> None:
    await migrate(old_db)
    store = open_store(old_db)
    try:
        hits = {
            q: [(h.chat.id, h.seq) for h in await store.search_chats("u-old", q, 10)]
            for q in ("中文", "习中", "notes", "lisboa", "ola")
        }
        assert hits == {
            "中文": [("old-a", 3)],  # keys written by the migration for rows stored before it
            "习中": [("old-a", 3)],
            "notes": [("old-a", None)],
            "lisboa": [("old-a", 4)],
            "ola": [("old-a", 2)],
        }
    finally:
        await store.close()


async def test_a_migrated_chat_goes_on_from_its_active_leaf(old_db: DatabaseURL) -> None:
    await migrate(old_db)
    store = open_store(old_db)
    try:
        c = Conversation("old-a", store, 60)
        plan = await c.begin_turn(TurnRequest("t-new", "u-old", "And Porto?", 5, "gpt-4o-mini"))
        assert isinstance(plan, TurnPlan)
        assert [m["content"] for m in plan.messages] == [
            "Be brief.",
            "Where is Lisboa?",
            "In Portugal.",
            "And Porto?",
        ]
        await c.complete_turn("t-new", "Also in Portugal.", 5, "stop")
        tail = (await store.list_path("old-a"))[-2:]
        assert [(m.seq, m.parent_seq) for m in tail] == [(6, 5), (7, 6)]
    finally:
        await store.close()


async def test_the_backfill_walks_every_row_batch_by_batch(
    old_db: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "BATCH", 2)  # batches that end inside a chat and between chats
    await migrate(old_db)
    store = open_store(old_db)
    try:
        for query, chat_id in [
            ("brief", "old-a"),
            ("portugal", "old-a"),
            ("gaps", "old-c"),
            ("five", "old-c"),
        ]:
            assert [h.chat.id for h in await store.search_chats("u-old", query, 10)] == [chat_id]
        every = [m for cid in OLD for m in await store.list_messages(cid, include_erased=True)]
        for m in every:  # each message found by its own first word of 3 characters or more
            word = next(w for w in m.content.replace(",", " ").replace("?", " ").split() if len(w) >= 3)
            if word.lower() not in ("the", "where"):
                hits = await store.search_chats("u-old", word, 10)
                assert m.chat_id in [h.chat.id for h in hits], (m.seq, word)
    finally:
        await store.close()
