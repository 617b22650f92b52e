"""The store the conversation actors use: the real store's answers and errors, failures logged."""

from __future__ import annotations

import logging

import pytest

from actors.measured_store import MeasuredStore
from store import ChatStore, DatabaseURL, open_store
from store.errors import AlreadyExists, StaleState, Unavailable
from store.records import ChatParams, ChatRecord, MessageRecord, Role

PARAMS = ChatParams(model="gpt-4o-mini", context_tokens=1000, max_tokens=100)


async def test_answers_and_protocol_errors_are_the_real_stores(
    store: ChatStore, chat_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    measured = MeasuredStore(store, chat_id)
    chat = ChatRecord(id=chat_id, user_id="u1", params=PARAMS)
    await measured.create_chat(chat, [MessageRecord(chat_id, 1, Role.SYSTEM, "Be brief.", 5)])
    version = await measured.write(chat_id, 0, append=[MessageRecord(chat_id, 2, Role.USER, "hi", 4)])
    assert version == 1 == (await store.get_chat(chat_id)).version  # type: ignore[union-attr]
    assert [m.content for m in await measured.list_messages(chat_id)] == ["Be brief.", "hi"]
    assert await measured.get_chat(chat_id) == await store.get_chat(chat_id)
    with pytest.raises(StaleState):
        await measured.write(chat_id, 0, title="stale")
    with pytest.raises(AlreadyExists):
        await measured.create_chat(chat, [])
    assert await measured.claim_event(f"ev-{chat_id}", "test") is True
    assert await measured.claim_event(f"ev-{chat_id}", "test") is False
    assert await measured.delete_chat(chat_id) is True
    # A stale write or a taken id is how the protocol works, not something to alert on.
    assert not [r for r in caplog.records if r.name == "chatservice.store" and r.levelno >= logging.WARNING]


async def test_an_unreachable_database_is_unavailable_and_logged_with_the_chat(
    chat_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = DatabaseURL.parse("mysql://chatservice:chatservice@127.0.0.1:1/chatservice_test")
    measured = MeasuredStore(open_store(nowhere, pool_size=1), chat_id)
    try:
        with pytest.raises(Unavailable):
            await measured.get_chat(chat_id)
    finally:
        await measured.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "chatservice.store"]
    assert len(warnings) == 1 and warnings[0].startswith(f"chat {chat_id}: store get_chat failed")
