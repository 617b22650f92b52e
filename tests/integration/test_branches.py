"""A conversation over its message tree (no Ray, both stores): regenerate, edit, switch, rename."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, Recount, TurnRequest
from actors.window import REPLY_PRIMING_TOKENS
from store import ChatStore
from store.errors import InvalidArgument, NotFound, PermissionDenied
from store.records import ChatParams
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

T = TypeVar("T")


async def arrive(call: Awaitable[T]) -> asyncio.Future[T]:
    """Send a call and give it time to reach the chat's queue (calls arrive one after the other)."""
    sent = asyncio.ensure_future(call)
    await asyncio.sleep(0.05)
    return sent


def prompt(plan_messages: tuple[dict[str, str], ...]) -> list[str]:
    return [m["content"] for m in plan_messages]


async def test_a_regenerate_answers_the_last_message_again_beside_its_answer(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    plan = await begin(c, regenerate())
    assert (plan.user_message_id, plan.siblings) == (4, (5,))
    assert prompt(plan.messages) == ["sys", "q1", "re: q1", "q2"]
    assert await leaf(store, chat_id) == 4  # while it runs, the active path ends at the question
    assert window(c) == await rebuilt(store, chat_id)
    result = await c.complete_turn(plan.turn_id, "another answer", 5, "stop")
    assert (result.assistant_message_id, result.active_leaf) == (6, 6)
    assert (await tree(store, chat_id))[3:] == [(4, 3, "q2"), (5, 4, "re: q2"), (6, 4, "another answer")]
    assert (await store.siblings(chat_id, [6]))[6] == (5, 6)
    assert window(c) == await rebuilt(store, chat_id)
    after = await turn(c, ask("q3", create=None))
    assert prompt(after.messages)[-3:] == ["q2", "another answer", "q3"]
    assert (await c.describe("u1"))[0].active_leaf == 8


async def test_a_regenerate_of_an_older_answer_branches_there(store: ChatStore, chat_id: str) -> None:
    c = await two_turns(store, chat_id)
    plan = await turn(c, regenerate(3), reply="q1 answered again")
    assert (plan.user_message_id, plan.siblings) == (2, (3,))
    assert prompt(plan.messages) == ["sys", "q1"]
    assert contents(await store.list_path(chat_id)) == ["sys", "q1", "q1 answered again"]
    assert contents(await store.list_path(chat_id, leaf=5)) == ["sys", "q1", "re: q1", "q2", "re: q2"]
    assert window(c) == await rebuilt(store, chat_id)


async def test_an_edit_sends_a_new_version_beside_the_message_and_keeps_the_earlier_branch(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    plan = await begin(c, edit(2, "q1, better"))
    assert (plan.user_message_id, plan.siblings) == (6, (2,))
    assert prompt(plan.messages) == ["sys", "q1, better"]
    assert window(c) == await rebuilt(store, chat_id)
    await c.complete_turn(plan.turn_id, "re: better", 5, "stop")
    assert (await tree(store, chat_id))[5:] == [(6, 1, "q1, better"), (7, 6, "re: better")]
    assert (await store.siblings(chat_id, [6]))[6] == (2, 6)
    # q2 is off the active path now: its edit starts from its parent, read from the store.
    again = await turn(c, edit(4, "q2, again"))
    assert (again.user_message_id, again.siblings) == (8, (4,))
    assert prompt(again.messages) == ["sys", "q1", "re: q1", "q2, again"]
    assert contents(await store.list_path(chat_id, leaf=7)) == ["sys", "q1, better", "re: better"]
    assert window(c) == await rebuilt(store, chat_id)


async def test_a_switch_rebuilds_the_window_from_the_store_and_the_next_turn_follows_it(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    await turn(c, edit(2, "short"))  # 6 ─ 7, the active path is 1, 6, 7
    _, before = await c.describe("u1")
    chat, after = await c.switch("u1", 5)
    assert chat.active_leaf == 5 == await leaf(store, chat_id)
    assert (
        window(c)
        == await rebuilt(store, chat_id)
        == [
            (1, "sys"),
            (2, "q1"),
            (3, "re: q1"),
            (4, "q2"),
            (5, "re: q2"),
        ]
    )
    assert (before.messages, after.messages) == (3, 5)
    assert after.tokens == sum(m.tokens for m in c.window_messages()) + REPLY_PRIMING_TOKENS
    assert (await c.switch("u1", 2))[0].active_leaf == 5  # down the newest child to a leaf
    assert (await c.switch("u1", 1))[0].active_leaf == 7  # 6 is 1's newest child
    await c.switch("u1", 3)
    nxt = await turn(c, ask("q3", create=None))
    assert nxt.user_message_id == 8  # after every message of the tree, not after the window
    assert prompt(nxt.messages)[-2:] == ["re: q2", "q3"]
    assert (await tree(store, chat_id))[-2:] == [(8, 5, "q3"), (9, 8, "re: q3")]
    assert window(c) == await rebuilt(store, chat_id)


async def test_a_switch_to_no_such_message_or_by_another_user_changes_nothing(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    for missing in (6, 0, -1, 2**63):
        with pytest.raises(NotFound):
            await c.switch("u1", missing)
    for wrong in ("3", 3.0, False):
        with pytest.raises(InvalidArgument):
            await c.switch("u1", wrong)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        await c.switch("intruder", 3)
    with pytest.raises(NotFound):
        await Conversation(chat_id + "-none", store, 60).switch("u1", 1)
    chat = await store.get_chat(chat_id)
    assert chat is not None and (chat.active_leaf, chat.version) == (5, 3)


async def test_rename_replaces_the_title_and_clears_it(store: ChatStore, chat_id: str) -> None:
    c = await two_turns(store, chat_id)
    assert (await c.rename("u1", "  Capitals\n of   the world ")).title == "Capitals of the world"
    await turn(c, ask("q3 does not retitle", create=None))
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.title == "Capitals of the world"
    assert (await c.rename("u1", "")).title == ""
    await turn(c, edit(2, "an edit titles an untitled chat"))
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.title == "an edit titles an untitled chat"
    for bad in ("x" * 201, "bell\x07", "nul\x00", "\ud800", None, 7):
        with pytest.raises(InvalidArgument):
            await c.rename("u1", bad)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        await c.rename("intruder", "mine now")
    assert (await c.rename("u1", "中文 " * 50)).title == ("中文 " * 50).strip()  # 149 characters
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.title == ("中文 " * 50).strip()


async def test_regenerate_edit_switch_and_rename_queue_behind_a_running_turn(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    running = await begin(c, ask("q3", create=None))  # 6
    again = await arrive(begin(c, regenerate()))
    switched = await arrive(c.switch("u1", 3))
    renamed = await arrive(c.rename("u1", "renamed"))
    edited = await arrive(begin(c, edit(2, "q1 edited")))
    assert not any(f.done() for f in (again, switched, renamed, edited))
    await c.complete_turn(running.turn_id, "re: q3", 5, "stop")  # 7
    plan = await again
    assert (plan.user_message_id, plan.siblings) == (6, (7,))  # the answer that just came
    await asyncio.sleep(0.1)
    assert not any(f.done() for f in (switched, renamed, edited))
    await c.complete_turn(plan.turn_id, "re: q3, again", 5, "stop")  # 8
    chat, _ = await switched
    assert chat.active_leaf == 8  # 3 leads down to the newest answer, the regenerated one
    assert (await renamed).title == "renamed"
    plan = await edited
    assert plan.user_message_id == 9 and prompt(plan.messages) == ["sys", "q1 edited"]
    await c.complete_turn(plan.turn_id, "fine", 5, "stop")
    assert window(c) == await rebuilt(store, chat_id)


async def test_an_edit_counted_for_another_model_asks_for_a_recount_and_a_regenerate_counts_nothing(
    store: ChatStore, chat_id: str
) -> None:
    c = await two_turns(store, chat_id)
    other = TurnRequest("t-other", "u1", "q1?", 3, "gpt-4", branch=edit(2, "").branch)
    assert await c.begin_turn(other) == Recount(MODEL)
    plan = await begin(c, TurnRequest("t-regen", "u1", "", 0, "gpt-4", branch=regenerate().branch))
    assert plan.user_message_id == 4


async def test_branches_never_create_a_chat(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    new = NewChat(ChatParams(MODEL, 400, 50), "sys", 10)
    for req in (regenerate(), edit(1, "hi")):
        with pytest.raises(NotFound):
            await c.begin_turn(
                TurnRequest(req.turn_id, "u1", req.content, req.tokens, MODEL, new, branch=req.branch)
            )
    assert await store.get_chat(chat_id) is None
