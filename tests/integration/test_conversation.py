"""The conversation's turn protocol over a real store (no Ray): write-through, eviction, turns."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest
from actors.window import REPLY_PRIMING_TOKENS
from store import ChatStore
from store.errors import (
    FailedPrecondition,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from store.records import ChatParams, ChatStatus, MessageStatus, Role

MODEL = "gpt-4o-mini"
SMALL = ChatParams(MODEL, context_tokens=100, max_tokens=20)
NEW = NewChat(SMALL, "sys", 10)


def ask(
    content: str = "hello",
    tokens: int = 10,
    user: str = "u1",
    create: NewChat | None = NEW,
    turn_id: str | None = None,
) -> TurnRequest:
    return TurnRequest(turn_id or uuid.uuid4().hex, user, content, tokens, MODEL, create)


async def begin(c: Conversation, req: TurnRequest) -> TurnPlan:
    plan = await c.begin_turn(req)
    assert isinstance(plan, TurnPlan)
    return plan


async def turn(c: Conversation, content: str, tokens: int = 10, reply_tokens: int = 10) -> TurnPlan:
    plan = await begin(c, ask(content, tokens))
    await c.complete_turn(plan.turn_id, f"re: {content}", reply_tokens, "stop")
    return plan


async def rebuilt(store: ChatStore, chat_id: str) -> list[tuple[int, str]]:
    fresh = Conversation(chat_id, store, 60)
    return [(m.seq, m.content) for m in await fresh.snapshot()]


async def test_first_turn_creates_the_chat_and_writes_through(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("Qual é a capital do Brasil?"))
    assert plan.created and plan.user_message_id == 2
    assert plan.messages == (
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Qual é a capital do Brasil?"},
    )
    assert [m.role for m in await store.list_messages(chat_id)] == [Role.SYSTEM, Role.USER]
    result = await c.complete_turn(plan.turn_id, "Brasília.", 5, "stop")
    assert result.assistant_message_id == 3
    stored = await store.list_messages(chat_id)
    assert [(m.role, m.content, m.turn_id) for m in stored[1:]] == [
        (Role.USER, "Qual é a capital do Brasil?", plan.turn_id),
        (Role.ASSISTANT, "Brasília.", plan.turn_id),
    ]
    chat = await store.get_chat(chat_id)
    assert chat is not None and chat.title == "Qual é a capital do Brasil?" and chat.user_id == "u1"


async def test_a_full_window_evicts_oldest_and_they_stay_in_the_store_flagged(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    # budget = 100 - 20 = 80; system 10 + priming 3 leaves 67 for messages.
    await turn(c, "one", 20, 10)
    await turn(c, "two", 20, 10)
    plan = await turn(c, "three", 30, 10)
    assert plan.evicted == 2
    window = [m.content for m in c.window_messages()]
    assert window == ["sys", "two", "re: two", "three", "re: three"]
    everything = await store.list_messages(chat_id, include_erased=True)
    assert [(m.content, m.erased) for m in everything[:3]] == [
        ("sys", False),
        ("one", True),
        ("re: one", True),
    ]
    assert plan.window.tokens == sum(m.tokens for m in c.window_messages()[:-1]) + REPLY_PRIMING_TOKENS
    assert await rebuilt(store, chat_id) == [(m.seq, m.content) for m in c.window_messages()]


async def test_a_message_that_never_fits_is_refused_and_nothing_is_stored(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    with pytest.raises(MessageTooLarge, match="admits at most 67"):
        await c.begin_turn(ask(tokens=68))
    assert await store.get_chat(chat_id) is None
    await turn(c, "ok")
    before = await store.list_messages(chat_id, include_erased=True)
    with pytest.raises(MessageTooLarge):
        await c.begin_turn(ask(tokens=500))
    assert await store.list_messages(chat_id, include_erased=True) == before
    await turn(c, "still works")


async def test_another_user_is_refused_and_a_missing_chat_is_not_created_without_leave(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    with pytest.raises(NotFound):
        await c.begin_turn(ask(create=None))
    await turn(c, "mine")
    with pytest.raises(PermissionDenied):
        await c.begin_turn(ask(user="intruder"))
    with pytest.raises(PermissionDenied):
        await c.describe("intruder")
    assert len(await store.list_messages(chat_id)) == 3


async def test_a_chat_counted_for_another_model_asks_for_a_recount(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await turn(c, "first")
    other = TurnRequest("t-x", "u1", "hi", 3, "gpt-4", None)
    assert await c.begin_turn(other) == Recount(MODEL)
    assert len(await store.list_messages(chat_id)) == 3
    await turn(c, "slot was released")


async def test_turns_run_one_at_a_time_in_arrival_order(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    first = await begin(c, ask("a"))
    later = [asyncio.ensure_future(begin(c, ask(x, 3))) for x in "bc"]
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in later)
    await c.complete_turn(first.turn_id, "A", 3, "stop")
    second = await later[0]
    await asyncio.sleep(0.05)
    assert not later[1].done()
    await c.complete_turn(second.turn_id, "B", 3, "stop")
    third = await later[1]
    await c.complete_turn(third.turn_id, "C", 3, "stop")
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "a", "A", "b", "B", "c", "C"]


async def test_begin_and_complete_are_idempotent_per_turn(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    req = ask("once")
    plan = await begin(c, req)
    assert await begin(c, req) == plan
    done = await c.complete_turn(plan.turn_id, "answer", 3, "stop")
    assert await c.complete_turn(plan.turn_id, "answer", 3, "stop") == done
    with pytest.raises(FailedPrecondition, match="already finished"):
        await c.begin_turn(req)
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "once", "answer"]


async def test_a_new_activation_resumes_a_turn_its_predecessor_stored(store: ChatStore, chat_id: str) -> None:
    dead = Conversation(chat_id, store, 60)
    req = ask("in flight")
    await begin(dead, req)
    survivor = Conversation(chat_id, store, 60)
    plan = await begin(survivor, req)
    assert plan.messages[-1] == {"role": "user", "content": "in flight"}
    await survivor.complete_turn(plan.turn_id, "done", 3, "stop")
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "in flight", "done"]


async def test_abort_keeps_a_partial_answer_flagged_and_frees_the_chat(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("stop me"))
    result = await c.abort_turn(plan.turn_id, "half an ans", 4, "cancelled")
    assert result.status is MessageStatus.INTERRUPTED
    plan2 = await begin(c, ask("no answer"))
    assert (await c.abort_turn(plan2.turn_id, "", 0, "error")).assistant_message_id is None
    stored = await store.list_messages(chat_id)
    assert [(m.content, m.status, m.finish_reason) for m in stored[2:]] == [
        ("half an ans", MessageStatus.INTERRUPTED, "cancelled"),
        ("no answer", MessageStatus.COMPLETE, None),
    ]
    await turn(c, "next")


async def test_an_abandoned_turn_frees_the_chat_when_its_lease_expires(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, turn_timeout=0.2)
    gone = await begin(c, ask("gateway dies"))
    plan = await asyncio.wait_for(begin(c, ask("next")), 5)
    with pytest.raises(FailedPrecondition, match="not in progress"):
        await c.complete_turn(gone.turn_id + "x", "late", 3, "stop")
    await c.complete_turn(plan.turn_id, "fine", 3, "stop")
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "gateway dies", "next", "fine"]


async def test_a_stale_activation_reloads_instead_of_overwriting(store: ChatStore, chat_id: str) -> None:
    a = Conversation(chat_id, store, 60)
    await turn(a, "from a")
    b = Conversation(chat_id, store, 60)
    await turn(b, "from b")
    await turn(a, "a after b")  # a's write meets b's version: a reloads and goes again on top
    assert [m.content for m in await store.list_messages(chat_id)] == [
        "sys",
        "from a",
        "re: from a",
        "from b",
        "re: from b",
        "a after b",
        "re: a after b",
    ]
    assert [(m.seq, m.content) for m in a.window_messages()] == await rebuilt(store, chat_id)


async def test_a_turn_overtaken_by_another_activation_fails_and_stores_no_answer(
    store: ChatStore, chat_id: str
) -> None:
    a = Conversation(chat_id, store, 60)
    plan = await begin(a, ask("a asks"))
    b = Conversation(chat_id, store, 60)
    await turn(b, "b asks")
    with pytest.raises(FailedPrecondition, match="moved on"):
        await a.complete_turn(plan.turn_id, "a's late answer", 3, "stop")
    with pytest.raises(FailedPrecondition, match="not stored"):
        await a.complete_turn(plan.turn_id, "a's late answer", 3, "stop")
    assert [m.content for m in await store.list_messages(chat_id)] == [
        "sys",
        "a asks",
        "b asks",
        "re: b asks",
    ]


async def test_an_answer_written_by_a_dying_activation_is_found_not_written_twice(
    store: ChatStore, chat_id: str
) -> None:
    dying = Conversation(chat_id, store, 60)
    plan = await begin(dying, ask("asked"))
    survivor = Conversation(chat_id, store, 60)
    await survivor.snapshot()  # activated before the dying one's last write lands
    await dying.complete_turn(plan.turn_id, "written while dying", 3, "stop")
    result = await survivor.complete_turn(plan.turn_id, "the gateway's retry", 3, "stop")
    assert result.assistant_message_id == 3
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "asked", "written while dying"]
    await turn(survivor, "next")


async def test_a_new_activation_completes_a_turn_its_predecessor_began(
    store: ChatStore, chat_id: str
) -> None:
    dead = Conversation(chat_id, store, 60)
    plan = await begin(dead, ask("asked before the crash"))
    survivor = Conversation(chat_id, store, 60)
    result = await survivor.complete_turn(plan.turn_id, "answered after it", 3, "stop")
    assert result.assistant_message_id == 3
    again = Conversation(chat_id, store, 60)  # the reply was lost too: the retry finds the answer
    assert (await again.complete_turn(plan.turn_id, "answered after it", 3, "stop")).assistant_message_id == 3
    assert [m.content for m in await store.list_messages(chat_id)] == [
        "sys",
        "asked before the crash",
        "answered after it",
    ]
    await turn(survivor, "and the chat goes on")


async def test_an_abandoned_turn_cannot_be_completed_once_the_chat_moved_on(
    store: ChatStore, chat_id: str
) -> None:
    dead = Conversation(chat_id, store, 60)
    gone = await begin(dead, ask("abandoned"))
    survivor = Conversation(chat_id, store, 60)
    await turn(survivor, "next question")
    with pytest.raises(FailedPrecondition, match="moved on"):
        await survivor.complete_turn(gone.turn_id, "too late", 3, "stop")
    with pytest.raises(FailedPrecondition, match="never began"):
        await survivor.abort_turn("no-such-turn", "", 0, "cancelled")
    assert "too late" not in [m.content for m in await store.list_messages(chat_id)]


async def test_a_turn_whose_lease_expired_reports_its_answer_was_not_stored(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, turn_timeout=0.1)
    plan = await begin(c, ask("slow gateway"))
    await asyncio.sleep(0.3)
    with pytest.raises(FailedPrecondition, match="expired"):
        await c.complete_turn(plan.turn_id, "late", 3, "stop")
    assert [m.content for m in await store.list_messages(chat_id)] == ["sys", "slow gateway"]


async def test_turns_per_minute_are_limited_per_chat(store: ChatStore, chat_id: str) -> None:
    now = [1000.0]
    c = Conversation(chat_id, store, 60, turns_per_minute=2, clock=lambda: now[0])
    await turn(c, "one")
    await turn(c, "two")
    with pytest.raises(ResourceExhausted, match="2 turns in the last minute"):
        await c.begin_turn(ask("three"))
    now[0] += 60
    await turn(c, "three")
    assert [m.content for m in await store.list_messages(chat_id)][-2:] == ["three", "re: three"]


async def test_end_refuses_further_turns_and_delete_forgets_everything(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    await turn(c, "hi")
    assert (await c.end("u1")).status is ChatStatus.ENDED
    with pytest.raises(FailedPrecondition, match="ended"):
        await c.begin_turn(ask())
    with pytest.raises(PermissionDenied):
        await c.delete("intruder")
    await c.delete("u1")
    assert await store.get_chat(chat_id) is None
    assert await store.list_messages(chat_id, include_erased=True) == []
    with pytest.raises(NotFound):
        await c.describe("u1")


async def test_create_without_a_turn_and_a_system_prompt_too_big(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    with pytest.raises(MessageTooLarge, match="system prompt"):
        await c.create("u1", NewChat(SMALL, "huge", 78))
    chat = await c.create("u1", NEW)
    assert chat.user_id == "u1"
    _, window = await c.describe("u1")
    assert (window.messages, window.tokens, window.context_tokens) == (1, 10 + REPLY_PRIMING_TOKENS, 100)
    with pytest.raises(Exception, match="already exists"):
        await c.create("u1", NEW)
