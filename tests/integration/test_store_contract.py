"""One contract for every ChatStore: each test runs on SQLite and on MariaDB/MySQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from store import ChatCursor, ChatStore, DatabaseURL, open_store
from store.errors import AlreadyExists, NotFound, StaleState, Unavailable
from store.records import (
    ChatParams,
    ChatRecord,
    ChatStatus,
    MessageRecord,
    MessageStatus,
    Role,
    utcnow,
)

PARAMS = ChatParams(
    model="m" * 128,
    context_tokens=1_047_576,
    max_tokens=32_768,
    temperature=0.7,
    top_p=0.95,
    n=1,
    stop=("END", "😀,"),
    presence_penalty=-1.5,
    frequency_penalty=2.0,
)


def chat(chat_id: str, user: str = "u1", **kw: object) -> ChatRecord:
    return ChatRecord(id=chat_id, user_id=user, params=PARAMS, **kw)  # type: ignore[arg-type]


def msg(chat_id: str, seq: int, role: Role = Role.USER, content: str = "hi", **kw: object) -> MessageRecord:
    return MessageRecord(chat_id, seq, role, content, tokens=len(content) + 3, **kw)  # type: ignore[arg-type]


async def test_a_chat_and_its_first_messages_round_trip_exactly(store: ChatStore, chat_id: str) -> None:
    record = chat(chat_id, title="Olá 👋 " + "x" * 150, active_leaf=2)
    first = [
        msg(chat_id, 1, Role.SYSTEM, "Be brief."),
        msg(chat_id, 2, content="Qual é a capital? 🇧🇷", parent_seq=1),
    ]
    await store.create_chat(record, first)
    assert await store.get_chat(chat_id) == record
    assert await store.list_messages(chat_id) == first


async def test_long_messages_and_awkward_text_are_stored_verbatim(store: ChatStore, chat_id: str) -> None:
    long = "🙂 long message " * 40_000  # ~640 kB: a 128k-token message
    nasty = "'); DROP TABLE chats; -- <script>alert(1)</script> \\ %s ? \x00end"
    await store.create_chat(chat(chat_id), [msg(chat_id, 1, content=long), msg(chat_id, 2, content=nasty)])
    assert [m.content for m in await store.list_messages(chat_id)] == [long, nasty]


async def test_creating_an_existing_chat_fails_and_changes_nothing(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1)])
    with pytest.raises(AlreadyExists):
        await store.create_chat(chat(chat_id, user="u2"), [msg(chat_id, 1, content="other")])
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.user_id == "u1"
    assert [m.content for m in await store.list_messages(chat_id)] == ["hi"]


async def test_missing_chat_reads_as_none_and_empty(store: ChatStore, chat_id: str) -> None:
    assert await store.get_chat(chat_id) is None
    assert await store.list_messages(chat_id) == []
    assert await store.delete_chat(chat_id) is False


async def test_write_appends_erases_and_bumps_the_version(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1, Role.SYSTEM), msg(chat_id, 2)])
    reply = msg(chat_id, 3, Role.ASSISTANT, "answer", turn_id="t1", finish_reason="stop")
    assert await store.write(chat_id, 0, append=[reply], title="first") == 1
    assert await store.write(chat_id, 1, append=[msg(chat_id, 4)], erase=[2], title="second") == 2
    window = await store.list_messages(chat_id)
    assert [m.seq for m in window] == [1, 3, 4]
    everything = await store.list_messages(chat_id, include_erased=True)
    assert [(m.seq, m.erased) for m in everything] == [(1, False), (2, True), (3, False), (4, False)]
    assert everything[2] == reply
    stored = await store.get_chat(chat_id)
    assert stored is not None and (stored.version, stored.title) == (2, "first")
    assert stored.updated_at >= stored.created_at


async def test_a_stale_version_writes_nothing(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1)])
    await store.write(chat_id, 0, append=[msg(chat_id, 2)])
    with pytest.raises(StaleState):
        await store.write(chat_id, 0, append=[msg(chat_id, 3)], erase=[1])
    assert [(m.seq, m.erased) for m in await store.list_messages(chat_id, include_erased=True)] == [
        (1, False),
        (2, False),
    ]
    with pytest.raises(NotFound):
        await store.write(chat_id + "-missing", 0, append=[])


async def test_concurrent_writers_on_one_version_exactly_one_wins(db_url: DatabaseURL, chat_id: str) -> None:
    stores = [open_store(db_url, pool_size=1) for _ in range(4)]
    await stores[0].create_chat(chat(chat_id), [msg(chat_id, 1)])
    results = await asyncio.gather(
        *(s.write(chat_id, 0, append=[msg(chat_id, 2, content=f"w{i}")]) for i, s in enumerate(stores)),
        return_exceptions=True,
    )
    assert sum(r == 1 for r in results) == 1
    assert all(isinstance(r, StaleState) for r in results if r != 1)
    assert len(await stores[0].list_messages(chat_id)) == 2
    for s in stores:
        await s.close()


async def test_status_and_interrupted_messages(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1)])
    partial = msg(
        chat_id, 2, Role.ASSISTANT, "half", status=MessageStatus.INTERRUPTED, finish_reason="cancelled"
    )
    await store.write(chat_id, 0, append=[partial], status=ChatStatus.ENDED)
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.status is ChatStatus.ENDED
    assert (await store.list_messages(chat_id))[-1] == partial


async def test_list_messages_pages_in_order(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, i, content=f"m{i}") for i in range(1, 8)])
    await store.write(chat_id, 0, erase=[2])
    assert [m.seq for m in await store.list_messages(chat_id, after_seq=3, limit=2)] == [4, 5]
    assert [m.seq for m in await store.list_messages(chat_id, limit=2)] == [1, 3]
    assert [m.seq for m in await store.list_messages(chat_id, include_erased=True, limit=2)] == [1, 2]


async def test_a_users_chats_list_newest_first_in_pages(store: ChatStore, chat_id: str) -> None:
    user = f"user-{chat_id}"
    t0 = utcnow()
    ids = [f"{chat_id}-{i}" for i in range(5)]
    for i, cid in enumerate(ids):
        created = t0 + timedelta(seconds=i // 2)  # pairs share a timestamp: the id breaks the tie
        await store.create_chat(chat(cid, user=user, created_at=created, updated_at=created), [])
    await store.create_chat(chat(f"{chat_id}-other", user="someone-else"), [])
    first = await store.list_chats(user, limit=2)
    last = first[-1]
    second = await store.list_chats(user, limit=2, after=ChatCursor(last.created_at, last.id))
    last = second[-1]
    third = await store.list_chats(user, limit=2, after=ChatCursor(last.created_at, last.id))
    listed = [c.id for c in first + second + third]
    assert listed == [ids[4], ids[3], ids[2], ids[1], ids[0]]


async def test_a_users_chats_are_theirs_exactly_not_a_padded_or_cased_namesake(
    store: ChatStore, chat_id: str
) -> None:
    """Found by the fuzz suite: on MySQL's PAD SPACE collations 'u' listed the chats of 'u '."""
    user = f"user-{chat_id}"
    names = (user, user + " ", user + "  ", user.upper(), " " + user)
    for i, name in enumerate(names):
        await store.create_chat(chat(f"{chat_id}-{i}", user=name), [])
    for i, name in enumerate(names):
        assert [c.id for c in await store.list_chats(name, limit=10)] == [f"{chat_id}-{i}"], repr(name)


async def test_delete_removes_the_chat_and_all_its_messages(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1), msg(chat_id, 2)])
    await store.write(chat_id, 0, erase=[1])
    assert await store.delete_chat(chat_id) is True
    assert await store.get_chat(chat_id) is None
    assert await store.list_messages(chat_id, include_erased=True) == []
    await store.create_chat(chat(chat_id), [msg(chat_id, 1, content="again")])
    assert [m.content for m in await store.list_messages(chat_id)] == ["again"]


async def test_ping_answers(store: ChatStore) -> None:
    await store.ping()


async def test_a_server_reports_its_connection_limit_and_a_file_has_none(
    store: ChatStore, db_url: DatabaseURL
) -> None:
    limit = await store.max_connections()
    if db_url.kind == "sqlite":
        assert limit is None
    else:
        assert limit is not None and limit >= 10


async def test_an_unreachable_mysql_is_unavailable_not_a_crash() -> None:
    from tests.conftest import free_port

    store = open_store(DatabaseURL.parse(f"mysql://u:p@127.0.0.1:{free_port()}/db"))
    with pytest.raises(Unavailable, match="unreachable"):
        await store.ping()
    with pytest.raises(Unavailable):
        await store.get_chat("x")
    await store.close()


async def test_an_event_is_claimed_once_even_by_concurrent_stores(db_url: DatabaseURL, chat_id: str) -> None:
    event = "SM" + chat_id.removeprefix("t-")
    stores = [open_store(db_url, pool_size=1) for _ in range(4)]
    results = await asyncio.gather(*(s.claim_event(event, "whatsapp:+5511999990000") for s in stores))
    assert sorted(results) == [False, False, False, True]
    assert await stores[0].claim_event(event, "whatsapp:+5511999990000") is False
    assert await stores[1].claim_event(event + "x", "whatsapp:+5511999990000") is True
    for s in stores:
        await s.close()
