"""The turn protocol at its edges over a real store (no Ray): withdrawn turns and renewed leases."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, TurnPlan, TurnRequest
from store import ChatStore
from store.errors import FailedPrecondition
from store.records import ChatParams, MessageStatus, Role

MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=400, max_tokens=50), "sys", 10)


def ask(content: str, turn_id: str | None = None, create: NewChat | None = NEW) -> TurnRequest:
    return TurnRequest(turn_id or uuid.uuid4().hex, "u1", content, 10, MODEL, create)


async def begin(c: Conversation, req: TurnRequest) -> TurnPlan:
    plan = await c.begin_turn(req)
    assert isinstance(plan, TurnPlan)
    return plan


async def stored(store: ChatStore, chat_id: str) -> list[tuple[int, str, str]]:
    """Every stored message, erased ones too: (seq, role, content)."""
    return [(m.seq, m.role.value, m.content) for m in await store.list_messages(chat_id, include_erased=True)]


async def same_window_as_store(c: Conversation, store: ChatStore, chat_id: str) -> bool:
    fresh = Conversation(chat_id, store, 60)
    return [(m.seq, m.content) for m in await c.snapshot()] == [
        (m.seq, m.content) for m in await fresh.snapshot()
    ]


async def test_queued_turns_withdrawn_by_their_clients_store_nothing(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    first = await begin(c, ask("first"))
    queued = [ask(f"gave up {i}", create=None) for i in range(20)]
    waiting = [asyncio.ensure_future(c.begin_turn(q)) for q in queued]
    await asyncio.sleep(0.1)  # all twenty wait for the slot
    for q in queued:
        await c.withdraw_turn(q.turn_id)
    # They leave the queue at once, while the first turn still holds the chat.
    for result in await asyncio.gather(*waiting, return_exceptions=True):
        assert isinstance(result, FailedPrecondition) and "withdrawn" in str(result)
    assert c.busy
    await c.complete_turn(first.turn_id, "re: first", 5, "stop")
    assert await stored(store, chat_id) == [
        (1, "system", "sys"),
        (2, "user", "first"),
        (3, "assistant", "re: first"),
    ]
    after = await begin(c, ask("next", create=None))  # the chat is free, nothing was left behind
    assert after.user_message_id == 4
    assert await same_window_as_store(c, store, chat_id)


async def test_a_turn_withdrawn_after_it_began_is_removed_with_the_title_it_gave(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    await c.create("u1", NEW)
    plan = await begin(c, ask("a ghost", create=None))
    assert (await store.get_chat(chat_id)).title == "a ghost"  # type: ignore[union-attr]
    await c.withdraw_turn(plan.turn_id)
    await c.withdraw_turn(plan.turn_id)  # a retry changes nothing
    assert await stored(store, chat_id) == [(1, "system", "sys")]
    assert (await store.get_chat(chat_id)).title == ""  # type: ignore[union-attr]
    with pytest.raises(FailedPrecondition, match="withdrawn"):
        await c.complete_turn(plan.turn_id, "too late", 3, "stop")
    with pytest.raises(FailedPrecondition, match="already finished"):
        await c.begin_turn(ask("a ghost", turn_id=plan.turn_id, create=None))
    again = await begin(c, ask("real question", create=None))
    await c.complete_turn(again.turn_id, "answer", 3, "stop")
    assert again.user_message_id == 2  # the removed message's seq is free again
    assert await stored(store, chat_id) == [
        (1, "system", "sys"),
        (2, "user", "real question"),
        (3, "assistant", "answer"),
    ]
    assert (await store.get_chat(chat_id)).title == "real question"  # type: ignore[union-attr]
    assert await same_window_as_store(c, store, chat_id)


async def test_a_withdrawn_turn_that_created_its_chat_leaves_no_chat(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("hello?"))
    assert plan.created
    await c.withdraw_turn(plan.turn_id)
    assert await store.get_chat(chat_id) is None and await stored(store, chat_id) == []


async def test_a_withdraw_that_overtakes_its_begin_is_remembered(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await c.create("u1", NEW)
    late = ask("arrives after its withdraw", create=None)
    await c.withdraw_turn(late.turn_id)
    with pytest.raises(FailedPrecondition, match="already finished"):
        await c.begin_turn(late)
    assert await stored(store, chat_id) == [(1, "system", "sys")]


async def test_a_withdraw_reaches_a_turn_a_dead_activation_began(store: ChatStore, chat_id: str) -> None:
    dead = Conversation(chat_id, store, 60)
    await dead.create("u1", NEW)
    plan = await begin(dead, ask("stored, then the actor died", create=None))
    fresh = Conversation(chat_id, store, 60)
    await fresh.withdraw_turn(plan.turn_id)
    assert await stored(store, chat_id) == [(1, "system", "sys")]
    assert await same_window_as_store(fresh, store, chat_id)


async def test_a_retried_begin_shares_the_outcome_of_the_one_still_waiting(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    first = await begin(c, ask("first"))
    req = ask("sent twice", create=None)
    a = asyncio.ensure_future(c.begin_turn(req))
    b = asyncio.ensure_future(c.begin_turn(req))  # the gateway's retry after a lost reply
    await asyncio.sleep(0.05)
    await c.complete_turn(first.turn_id, "re: first", 3, "stop")
    plan_a, plan_b = await asyncio.gather(a, b)
    assert plan_a == plan_b
    users = [m for m in await store.list_messages(chat_id) if m.role is Role.USER]
    assert [m.content for m in users] == ["first", "sent twice"]


async def test_a_renewed_turn_outlives_its_lease_and_the_next_one_waits(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 0.6)
    long = await begin(c, ask("a long answer"))
    nxt = asyncio.ensure_future(c.begin_turn(ask("next", create=None)))
    for _ in range(8):  # twice the lease, renewed every quarter of it
        await asyncio.sleep(0.15)
        await c.renew_turn(long.turn_id)
    assert not nxt.done()
    result = await c.complete_turn(long.turn_id, "the whole answer", 5, "stop")
    assert result.status is MessageStatus.COMPLETE
    assert isinstance(await nxt, TurnPlan)
    assert [m.content for m in await store.list_messages(chat_id)][-3:] == [
        "a long answer",
        "the whole answer",
        "next",
    ]


async def test_a_renewal_on_a_fresh_activation_takes_the_turn_over(store: ChatStore, chat_id: str) -> None:
    dead = Conversation(chat_id, store, 60)
    long = await begin(dead, ask("streaming while the actor died"))
    fresh = Conversation(chat_id, store, 60)
    await fresh.renew_turn(long.turn_id)
    nxt = asyncio.ensure_future(fresh.begin_turn(ask("queued on the new activation", create=None)))
    await asyncio.sleep(0.1)
    assert not nxt.done()  # the renewed turn holds the chat on the new activation
    await fresh.complete_turn(long.turn_id, "whole", 2, "stop")
    assert isinstance(await nxt, TurnPlan)


async def test_a_turn_whose_lease_ran_out_cannot_be_renewed(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 0.1)
    plan = await begin(c, ask("abandoned"))
    await asyncio.sleep(0.5)
    with pytest.raises(FailedPrecondition, match="expired"):
        await c.renew_turn(plan.turn_id)
