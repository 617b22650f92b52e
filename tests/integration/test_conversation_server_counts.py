"""The conversation under what an LLM server counts: scaled admission, shrink_turn, honest answers.

Over a real store (no Ray), both SQLite and MariaDB, like the other conversation tests.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, TurnPlan, TurnRequest
from store import ChatStore
from store.errors import FailedPrecondition, InvalidArgument, MessageTooLarge
from store.records import ChatParams, MessageStatus, Role

MODEL = "toy"
PARAMS = ChatParams(MODEL, context_tokens=200, max_tokens=40)  # budget 160
NEW = NewChat(PARAMS, "sys", 10)


def ask(content: str, tokens: int, **calibration: float | int) -> TurnRequest:
    return replace(TurnRequest(uuid.uuid4().hex, "u1", content, tokens, MODEL, NEW), **calibration)


async def begin(c: Conversation, req: TurnRequest) -> TurnPlan:
    plan = await c.begin_turn(req)
    assert isinstance(plan, TurnPlan)
    return plan


async def chat_of(c: Conversation, *sizes: int) -> None:
    """Turns of a user message and an answer of each size."""
    for i, size in enumerate(sizes):
        plan = await begin(c, ask(f"message {i}", size))
        await c.complete_turn(plan.turn_id, f"answer {i}", size, "stop")


async def test_a_prompt_is_admitted_as_the_server_counts_it(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await chat_of(c, 30, 30)  # system 10 + 4 x 30 + priming 3 = 133 of 160
    plan = await begin(c, ask("third", 20, correction=1.0))
    assert plan.evicted == 0  # 153 by our count
    await c.complete_turn(plan.turn_id, "ok", 5, "stop")
    # The server counts 1.5x: the same message now evicts until 1.5 x prompt <= 160.
    plan = await begin(c, ask("fourth", 20, correction=1.5))
    assert plan.window.tokens * 1.5 <= 160 and plan.evicted >= 2
    assert plan.window.correction == 1.5


async def test_a_message_that_fits_by_our_count_but_not_the_servers_is_too_large(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    with pytest.raises(MessageTooLarge, match="admits at most"):
        await begin(c, ask("long", 100, correction=2.0))  # 2 x (10 + 100 + 3) > 160
    assert await store.get_chat(chat_id) is None  # nothing half-written


async def test_a_smaller_server_context_squeezes_the_chats_budget(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await chat_of(c, 30, 30)
    # The server said its context is 120: 80 tokens of prompt once the answer's 40 are kept.
    plan = await begin(c, ask("next", 20, server_context=120))
    assert plan.window.tokens <= 80


async def test_shrink_turn_evicts_the_oldest_and_writes_it_through(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await chat_of(c, 20, 20)
    plan = await begin(c, ask("the question", 30))
    assert plan.window.tokens == 10 + 4 * 20 + 30 + 3
    shrunk = await c.shrink_turn(plan.turn_id, 90)
    assert shrunk.turn_id == plan.turn_id and shrunk.user_message_id == plan.user_message_id
    assert shrunk.window.tokens <= 90 and shrunk.evicted == plan.evicted + 2
    assert [m["content"] for m in shrunk.messages] == ["sys", "message 1", "answer 1", "the question"]
    stored = await store.list_messages(chat_id, include_erased=True)
    assert [m.seq for m in stored if m.erased] == [2, 3]
    # The turn goes on with the shrunk plan: a retried begin gets it, and it completes.
    assert await c.begin_turn(replace(ask("the question", 30), turn_id=plan.turn_id)) == shrunk
    await c.complete_turn(plan.turn_id, "the answer", 10, "stop")
    fresh = Conversation(chat_id, store, 60)
    assert [m.content for m in await fresh.snapshot()] == [
        "sys",
        "message 1",
        "answer 1",
        "the question",
        "the answer",
    ]


async def test_shrink_turn_never_evicts_the_system_prompt_or_the_turns_own_message(
    store: ChatStore, chat_id: str
) -> None:
    c = Conversation(chat_id, store, 60)
    await chat_of(c, 20)
    plan = await begin(c, ask("big question", 100))
    shrunk = await c.shrink_turn(plan.turn_id, 5)  # unreachable: everything else goes
    assert [m["content"] for m in shrunk.messages] == ["sys", "big question"]
    assert await c.shrink_turn(plan.turn_id, 5) == shrunk  # nothing more to evict: the same plan


async def test_shrink_turn_of_a_finished_turn_is_refused(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("q", 10))
    await c.complete_turn(plan.turn_id, "a", 3, "stop")
    with pytest.raises(FailedPrecondition):
        await c.shrink_turn(plan.turn_id, 10)


async def test_shrink_turn_is_adopted_by_a_fresh_activation(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    await chat_of(c, 20, 20)
    plan = await begin(c, ask("the question", 30))
    survivor = Conversation(chat_id, store, 60)  # the first actor died mid-turn
    shrunk = await survivor.shrink_turn(plan.turn_id, 60)
    assert shrunk.window.tokens <= 60 and shrunk.messages[-1]["content"] == "the question"


@pytest.mark.parametrize("answer", ["", "  \n"])
async def test_an_empty_answer_is_never_stored_as_complete(
    store: ChatStore, chat_id: str, answer: str
) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("q", 10))
    with pytest.raises(InvalidArgument, match="empty"):
        await c.complete_turn(plan.turn_id, answer, 0, "stop")
    result = await c.abort_turn(plan.turn_id, "", 0, "error")
    assert result.assistant_message_id is None
    assert [m.role for m in await store.list_messages(chat_id)] == [Role.SYSTEM, Role.USER]


async def test_the_servers_prompt_count_is_shown_with_the_window(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    plan = await begin(c, ask("q", 10, correction=1.25))
    result = await c.complete_turn(plan.turn_id, "a", 3, "stop", server_prompt_tokens=29)
    assert (result.window.server_prompt_tokens, result.window.correction) == (29, 1.25)
    assert result.status is MessageStatus.COMPLETE
    _, window = await c.describe("u1")
    assert (window.server_prompt_tokens, window.correction) == (29, 1.25)
