"""LocalConversations' own promises: a caller's cancel never cuts a write short; idle chats beyond the bound leave."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from actors.inprocess import LocalConfig, LocalConversations
from actors.protocol import NewChat, TurnPlan, TurnRequest
from store import ChatStore, DatabaseURL, open_store
from store.records import ChatParams, MessageStatus

MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=200, max_tokens=50), "sys", 10)


@pytest.fixture
async def sqlite_store(sqlite_url: DatabaseURL) -> AsyncIterator[ChatStore]:
    store = open_store(sqlite_url)
    yield store
    await store.close()


def ask(content: str) -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, "u1", content, 12, MODEL, NEW)


async def test_a_cancelled_caller_leaves_its_call_to_finish(sqlite_store: ChatStore, chat_id: str) -> None:
    port = LocalConversations(sqlite_store, LocalConfig(turn_timeout=60))
    plan = await port.begin_turn(chat_id, ask("hello"))
    assert isinstance(plan, TurnPlan)
    call = asyncio.ensure_future(port.complete_turn(chat_id, plan.turn_id, "answer", 5, "stop"))
    await asyncio.sleep(0)  # the call is under way: its caller goes away now, as a client may
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await port.close()  # waits for the calls still running
    assert [m.content for m in await sqlite_store.list_messages(chat_id)] == ["sys", "hello", "answer"]
    again = await port.complete_turn(chat_id, plan.turn_id, "answer", 5, "stop")
    assert again.status is MessageStatus.COMPLETE  # finished once: a retry gets the same outcome


async def test_idle_chats_beyond_the_bound_are_dropped_but_a_chat_in_a_turn_is_not(
    sqlite_store: ChatStore,
) -> None:
    port = LocalConversations(sqlite_store, LocalConfig(turn_timeout=60, loaded=1))
    busy, *others = [f"t-{uuid.uuid4().hex}" for _ in range(4)]
    plan = await port.begin_turn(busy, ask("a long answer"))
    assert isinstance(plan, TurnPlan)
    for other in others:
        await port.create(other, "u1", NEW)
    assert port.loaded == 1  # only the chat holding a turn stayed
    result = await port.complete_turn(busy, plan.turn_id, "done", 5, "stop")
    assert result.status is MessageStatus.COMPLETE
    for other in others:  # a dropped chat loads again from the store when next reached
        chat, window = await port.describe(other, "u1")
        assert chat.id == other and window.messages == 1
    assert port.loaded == 1
