"""Branch turns at their edges (no Ray, both stores): aborts, withdraws, dead and stale activations, bad ids."""

from __future__ import annotations

import asyncio

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, TurnRequest
from store import ChatStore
from store.errors import FailedPrecondition, InvalidArgument, MessageTooLarge, NotFound, StaleState
from store.records import ChatParams, MessageStatus
from tests.integration.branch_support import (
    MODEL,
    ask,
    begin,
    contents,
    edit,
    leaf,
    rebuilt,
    regenerate,
    tree,
    turn,
    two_turns,
    window,
)

SMALL = NewChat(ChatParams(MODEL, context_tokens=100, max_tokens=20), "sys", 10)  # 67 tokens for messages


async def test_a_regenerate_aborted_before_any_text_stores_nothing_and_goes_back(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    plan = await begin(c, regenerate())
    result = await c.abort_turn(plan.turn_id, "", 0, "error")
    assert (result.assistant_message_id, result.active_leaf) == (None, 5)
    assert len(await tree(store, chat_id)) == 5 and await leaf(store, chat_id) == 5
    assert window(c) == await rebuilt(store, chat_id)
    plan = await begin(c, regenerate())
    result = await c.abort_turn(plan.turn_id, "half an ans", 3, "cancelled")
    assert (result.assistant_message_id, result.status, result.active_leaf) == (
        6,
        MessageStatus.INTERRUPTED,
        6,
    )
    assert (await tree(store, chat_id))[-1] == (6, 4, "half an ans")
    assert window(c) == await rebuilt(store, chat_id)


async def test_withdrawn_edits_and_regenerates_leave_the_chat_as_it_was(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    await c.create("u1", NewChat(ChatParams(MODEL, 400, 50), "sys", 10))
    await turn(c, ask("q1", create=None))
    await c.rename("u1", "")
    before = await tree(store, chat_id)
    for req in (edit(2, "second thoughts"), regenerate(), regenerate(3)):
        plan = await begin(c, req)
        await c.withdraw_turn(plan.turn_id)
        assert await tree(store, chat_id) == before and await leaf(store, chat_id) == 3
        assert window(c) == await rebuilt(store, chat_id)
        chat = await store.get_chat(chat_id)
        assert chat is not None and chat.title == ""  # the edit's title went with it
    again = await turn(c, edit(2, "edited for good"))
    assert again.user_message_id == 4  # the withdrawn message's seq is free again


async def test_a_fresh_activation_takes_over_a_regenerate_its_predecessor_began(
    store: ChatStore, chat_id: str
) -> None:
    dead = await two_turns(store, chat_id)
    plan = await begin(dead, regenerate())
    fresh = Conversation(chat_id, store, 60)
    with pytest.raises(FailedPrecondition, match="never began"):  # nothing stored names the turn
        await fresh.renew_turn(plan.turn_id)
    await fresh.renew_turn(plan.turn_id, plan.user_message_id)
    queued = asyncio.ensure_future(begin(fresh, ask("queued", create=None)))
    await asyncio.sleep(0.1)
    assert not queued.done()  # the regenerate holds the chat on the new activation
    result = await fresh.complete_turn(plan.turn_id, "answered again", 5, "stop", None, plan.user_message_id)
    assert (result.assistant_message_id, result.active_leaf) == (6, 6)
    assert (await queued).user_message_id == 7
    again = Conversation(chat_id, store, 60)  # the reply was lost: the retry finds the answer
    retried = await again.complete_turn(plan.turn_id, "answered again", 5, "stop", None, plan.user_message_id)
    assert retried.assistant_message_id == 6
    assert [(s, p) for s, p, _ in await tree(store, chat_id)][4:] == [(5, 4), (6, 4), (7, 6)]


async def test_a_regenerate_is_not_taken_over_once_the_chat_moved_on(store: ChatStore, chat_id: str) -> None:
    dead = await two_turns(store, chat_id)
    plan = await begin(dead, regenerate())  # the leaf is the question, 4
    fresh = Conversation(chat_id, store, 60)
    await turn(fresh, ask("sent meanwhile", create=None))  # 6 follows 4, 7 answers it
    with pytest.raises(FailedPrecondition, match="moved on"):
        await fresh.complete_turn(plan.turn_id, "late", 5, "stop", None, plan.user_message_id)
    aborted = Conversation(chat_id, store, 60)
    unanswered = await begin(aborted, ask("no answer", create=None))  # 8, left without an answer
    await aborted.abort_turn(unanswered.turn_id, "", 0, "error")
    with pytest.raises(FailedPrecondition, match="moved on"):  # 8 is not the message it answers
        await Conversation(chat_id, store, 60).abort_turn(plan.turn_id, "late", 1, "cancelled", 4)
    assert "late" not in contents(await store.list_messages(chat_id))


async def test_a_fresh_activation_resumes_an_edit_or_a_regenerate_from_a_retried_begin(
    store: ChatStore, chat_id: str
) -> None:
    dead = await two_turns(store, chat_id)
    edited = edit(2, "q1 edited")
    plan = await begin(dead, edited)
    resumed = await begin(Conversation(chat_id, store, 60), edited)
    assert (resumed.user_message_id, resumed.messages) == (plan.user_message_id, plan.messages)
    await dead.complete_turn(plan.turn_id, "re: edited", 5, "stop")  # 7
    again = regenerate()
    first = await begin(Conversation(chat_id, store, 60), again)
    retried = await begin(Conversation(chat_id, store, 60), again)
    assert (
        (retried.user_message_id, retried.messages)
        == (first.user_message_id, first.messages)
        == (
            6,
            ({"role": "system", "content": "sys"}, {"role": "user", "content": "q1 edited"}),
        )
    )


async def test_bad_branch_requests_are_refused_and_store_nothing(store: ChatStore, chat_id: str) -> None:
    c = await two_turns(store, chat_id)
    before = (await tree(store, chat_id), await store.get_chat(chat_id))
    with pytest.raises(InvalidArgument, match="not a user message"):
        await c.begin_turn(edit(3, "answers are not edited"))
    with pytest.raises(InvalidArgument, match="neither"):
        await c.begin_turn(regenerate(1))  # the system prompt
    with pytest.raises(InvalidArgument, match="no message"):
        await c.begin_turn(TurnRequest("t-c", "u1", "text", 2, MODEL, branch=regenerate().branch))
    for missing in (6, 0, -5, 2**64):
        with pytest.raises(NotFound):
            await c.begin_turn(edit(missing, "x"))
        with pytest.raises(NotFound):
            await c.begin_turn(regenerate(missing))
    for wrong in (2.0, "2", True, None):
        with pytest.raises(InvalidArgument, match="whole number"):
            await c.begin_turn(edit(wrong, "x"))  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge):
        await c.begin_turn(edit(2, "huge", tokens=500))
    assert (await tree(store, chat_id), await store.get_chat(chat_id)) == before
    empty = Conversation(chat_id + "-sys", store, 60)
    await empty.create("u1", NewChat(ChatParams(MODEL, 400, 50), "sys", 10))
    with pytest.raises(FailedPrecondition, match="no answer to regenerate"):
        await empty.begin_turn(regenerate())
    await turn(c, ask("still works", create=None))


async def test_a_regenerate_answers_an_unanswered_message_under_it(store: ChatStore, chat_id: str) -> None:
    c = await two_turns(store, chat_id)
    plan = await begin(c, ask("the LLM failed", create=None))  # 6
    await c.abort_turn(plan.turn_id, "", 0, "error")
    again = await turn(c, regenerate(), reply="answered at last")
    assert (again.user_message_id, again.siblings) == (6, None)
    assert (await tree(store, chat_id))[-1] == (7, 6, "answered at last")
    assert window(c) == await rebuilt(store, chat_id)


async def test_evictions_follow_the_active_path_and_shared_messages_stay_evicted(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    await turn(c, ask("q1", tokens=20, create=SMALL))  # 1 sys, 2 q1, 3 re: q1 (5 tokens)
    await turn(c, ask("q2", tokens=20, create=None))  # 4, 5: 10 + 50 + 3 = 63 of 80
    plan = await begin(c, edit(4, "q2, longer", tokens=55))  # 6 after 3: evicts q1 from the new path
    assert plan.evicted == 1 and [m["content"] for m in plan.messages] == ["sys", "re: q1", "q2, longer"]
    await c.complete_turn(plan.turn_id, "ok", 5, "stop")
    assert window(c) == await rebuilt(store, chat_id)
    await c.switch("u1", 5)  # the old branch shares q1, evicted: the store's rule
    assert window(c) == await rebuilt(store, chat_id) == [(1, "sys"), (3, "re: q1"), (4, "q2"), (5, "re: q2")]
    with pytest.raises(FailedPrecondition, match="left the context window"):
        await c.begin_turn(regenerate(3))  # its question, q1, is evicted
    shrunk = await begin(c, regenerate())
    plan = await c.shrink_turn(shrunk.turn_id, 10)
    assert [m["content"] for m in plan.messages] == ["sys", "q2"]  # the question is spared
    await c.complete_turn(shrunk.turn_id, "short", 5, "stop")
    assert window(c) == await rebuilt(store, chat_id)


async def test_a_stale_activation_goes_on_from_the_branch_another_one_chose(
    store: ChatStore, chat_id: str
) -> None:
    a = await two_turns(store, chat_id)
    b = Conversation(chat_id, store, 60)
    await turn(b, edit(2, "b's edit"))  # 6 ─ 7
    plan = await turn(a, ask("a goes on", create=None))  # a's write is stale: it reloads first
    assert [m["content"] for m in plan.messages] == ["sys", "b's edit", "re: b's edit", "a goes on"]
    assert (await tree(store, chat_id))[-2:] == [(8, 7, "a goes on"), (9, 8, "re: a goes on")]
    await b.switch("u1", 5)
    await turn(a, regenerate(3), reply="a regenerates")  # a is stale again, b switched
    assert (await tree(store, chat_id))[-1] == (10, 2, "a regenerates")
    assert window(a) == await rebuilt(store, chat_id)


async def test_a_turn_whose_activation_reloaded_a_moved_on_chat_stores_nothing_anywhere(
    store: ChatStore, chat_id: str
) -> None:
    a = Conversation(chat_id, store, 60)
    await turn(a, ask("q1", tokens=20, create=SMALL))
    plan = await begin(a, ask("held by a", tokens=20, create=None))  # 4
    b = Conversation(chat_id, store, 60)
    await b.renew_turn(plan.turn_id)  # b takes it over, then finishes it and moves on
    await b.complete_turn(plan.turn_id, "b's answer", 5, "stop")
    await turn(b, ask("b goes on", create=None))
    with pytest.raises(StaleState):
        await a.shrink_turn(plan.turn_id, 10)  # a's eviction meets b's writes
    await a.snapshot()  # a reloads: the active leaf is b's
    with pytest.raises(FailedPrecondition, match="moved on"):
        await a.shrink_turn(plan.turn_id, 10)
    with pytest.raises(FailedPrecondition, match="moved on"):
        await a.complete_turn(plan.turn_id, "a's late answer", 5, "stop")
    assert "a's late answer" not in contents(await store.list_messages(chat_id))
    assert window(a) == await rebuilt(store, chat_id)
