"""Conversation actors on a real local Ray: rehydration, serialised turns, access, passivation, branches."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import ray

from actors.actor import ActorConfig
from actors.names import NAMESPACE, actor_name
from actors.protocol import Edit, NewChat, Regenerate, TurnPlan, TurnRequest
from actors.router import ConversationRouter
from store import DatabaseURL, open_store
from store.errors import NotFound, PermissionDenied
from store.records import ChatParams

pytestmark = pytest.mark.ray
MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=200, max_tokens=50), "sys", 10)


@pytest.fixture
def registry(ray_session: str, db_url: DatabaseURL) -> ConversationRouter:
    return ConversationRouter(ActorConfig(db_url, turn_timeout=60, idle_seconds=600))


def ask(content: str, user: str = "u1") -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, user, content, 12, MODEL, NEW)


async def turn(registry: ConversationRouter, chat_id: str, content: str) -> TurnPlan:
    plan = await registry.begin_turn(chat_id, ask(content))
    assert isinstance(plan, TurnPlan)
    await registry.complete_turn(chat_id, plan.turn_id, f"re: {content}", 12, "stop")
    return plan


async def test_a_killed_actor_rehydrates_the_same_window(registry: ConversationRouter, chat_id: str) -> None:
    for i in range(12):  # enough to evict: 12 turns x 24 tokens overflow a 150-token budget
        await turn(registry, chat_id, f"message {i}")
    before = await registry.window_messages(chat_id)
    assert before[0].content == "sys" and before[1].content != "message 0"
    ray.kill(ray.get_actor(actor_name(chat_id), namespace=NAMESPACE), no_restart=True)
    after = await registry.window_messages(chat_id)
    assert after == before
    plan = await turn(registry, chat_id, "after the crash")
    assert plan.messages[-1]["content"] == "after the crash"


async def test_two_concurrent_turns_on_one_chat_are_serialised(
    registry: ConversationRouter, chat_id: str
) -> None:
    first = await registry.begin_turn(chat_id, ask("first"))
    assert isinstance(first, TurnPlan)
    second = asyncio.ensure_future(registry.begin_turn(chat_id, ask("second")))
    await asyncio.sleep(0.3)
    assert not second.done(), "a second turn began while the first was still running"
    await registry.complete_turn(chat_id, first.turn_id, "first answer", 5, "stop")
    plan = await asyncio.wait_for(second, 10)
    assert isinstance(plan, TurnPlan)
    assert [m["content"] for m in plan.messages] == ["sys", "first", "first answer", "second"]
    await registry.complete_turn(chat_id, plan.turn_id, "second answer", 5, "stop")


async def test_another_user_gets_a_permission_error_through_ray(
    registry: ConversationRouter, chat_id: str
) -> None:
    await turn(registry, chat_id, "private")
    with pytest.raises(PermissionDenied, match="another user"):
        await registry.begin_turn(chat_id, ask("let me in", user="intruder"))
    with pytest.raises(NotFound):
        await registry.describe(chat_id + "-none", "u1")


async def test_actor_processes_import_neither_tiktoken_nor_openai(
    registry: ConversationRouter, chat_id: str
) -> None:
    await turn(registry, chat_id, "hello")
    stats = await registry.stats(chat_id)
    assert stats["chat_id"] == chat_id
    assert stats["gateway_modules"] == []


async def test_an_idle_actor_passivates_and_reactivates_with_the_same_window(
    ray_session: str, db_url: DatabaseURL, chat_id: str
) -> None:
    registry = ConversationRouter(ActorConfig(db_url, turn_timeout=60, idle_seconds=0.5))
    await turn(registry, chat_id, "remember me")
    before = await registry.window_messages(chat_id)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            ray.get_actor(actor_name(chat_id), namespace=NAMESPACE)
        except ValueError:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("idle actor did not passivate")
    assert await registry.window_messages(chat_id) == before


async def rebuilt(db_url: DatabaseURL, chat_id: str) -> list[tuple[int, str]]:
    store = open_store(db_url)
    try:
        return [(m.seq, m.content) for m in await store.list_path(chat_id)]
    finally:
        await store.close()


async def killed(chat_id: str) -> None:
    """Kill the chat's actor and wait until it is gone (ray.kill returns before the actor dies)."""
    actor = ray.get_actor(actor_name(chat_id), namespace=NAMESPACE)
    ray.kill(actor, no_restart=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if ray.get_actor(actor_name(chat_id), namespace=NAMESPACE) != actor:
                return
        except ValueError:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the killed actor is still registered")


def branch(turn_id: str, kind: Regenerate | Edit, content: str = "") -> TurnRequest:
    return TurnRequest(turn_id, "u1", content, 12 if content else 0, MODEL, branch=kind)


async def test_regenerate_edit_switch_and_rename_through_ray(
    registry: ConversationRouter, db_url: DatabaseURL, chat_id: str
) -> None:
    await turn(registry, chat_id, "q1")  # 1 sys, 2 q1, 3 re: q1
    plan = await registry.begin_turn(chat_id, branch("t-regen", Regenerate()))
    assert isinstance(plan, TurnPlan) and (plan.user_message_id, plan.siblings) == (2, (3,))
    result = await registry.complete_turn(chat_id, "t-regen", "again", 5, "stop", None, 2)
    assert (result.assistant_message_id, result.active_leaf) == (4, 4)
    plan = await registry.begin_turn(chat_id, branch("t-edit", Edit(2), "q1 edited"))
    assert isinstance(plan, TurnPlan) and [m["content"] for m in plan.messages] == ["sys", "q1 edited"]
    await registry.complete_turn(chat_id, "t-edit", "re: edited", 5, "stop", None, plan.user_message_id)
    chat, window = await registry.switch(chat_id, "u1", 3)
    assert chat.active_leaf == 3 and window.messages == 3
    assert [(m.seq, m.content) for m in await registry.window_messages(chat_id)] == await rebuilt(
        db_url, chat_id
    )
    assert (await registry.rename(chat_id, "u1", "Named")).title == "Named"
    with pytest.raises(PermissionDenied):
        await registry.rename(chat_id, "intruder", "mine")
    described, _ = await registry.describe(chat_id, "u1")
    assert (described.title, described.active_leaf) == ("Named", 3)


async def test_a_regenerate_survives_its_actors_death(
    registry: ConversationRouter, db_url: DatabaseURL, chat_id: str
) -> None:
    await turn(registry, chat_id, "q1")
    plan = await registry.begin_turn(chat_id, branch("t-regen", Regenerate()))
    assert isinstance(plan, TurnPlan)
    await killed(chat_id)
    await registry.renew_turn(chat_id, "t-regen", plan.user_message_id)  # a fresh activation takes it
    queued = asyncio.ensure_future(registry.begin_turn(chat_id, ask("queued behind it")))
    await asyncio.sleep(0.3)
    assert not queued.done()
    result = await registry.complete_turn(chat_id, "t-regen", "answered again", 5, "stop", None, 2)
    assert result.assistant_message_id == 4
    nxt = await asyncio.wait_for(queued, 10)
    assert isinstance(nxt, TurnPlan) and [m["content"] for m in nxt.messages][-2:] == [
        "answered again",
        "queued behind it",
    ]
    await registry.complete_turn(chat_id, nxt.turn_id, "fine", 5, "stop")
    assert [(m.seq, m.content) for m in await registry.window_messages(chat_id)] == await rebuilt(
        db_url, chat_id
    )
