"""Conversation actors on a real local Ray: rehydration, serialised turns, access, passivation."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import ray

from actors.actor import ActorConfig
from actors.names import NAMESPACE, actor_name
from actors.protocol import NewChat, TurnPlan, TurnRequest
from actors.registry import ChatRegistry
from store import DatabaseURL
from store.errors import NotFound, PermissionDenied
from store.records import ChatParams

pytestmark = pytest.mark.ray
MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=200, max_tokens=50), "sys", 10)


@pytest.fixture
def registry(ray_session: str, db_url: DatabaseURL) -> ChatRegistry:
    return ChatRegistry(ActorConfig(db_url, turn_timeout=60, idle_seconds=600))


def ask(content: str, user: str = "u1") -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, user, content, 12, MODEL, NEW)


async def turn(registry: ChatRegistry, chat_id: str, content: str) -> TurnPlan:
    plan = await registry.begin_turn(chat_id, ask(content))
    assert isinstance(plan, TurnPlan)
    await registry.complete_turn(chat_id, plan.turn_id, f"re: {content}", 12, "stop")
    return plan


async def test_a_killed_actor_rehydrates_the_same_window(registry: ChatRegistry, chat_id: str) -> None:
    for i in range(12):  # enough to evict: 12 turns x 24 tokens overflow a 150-token budget
        await turn(registry, chat_id, f"message {i}")
    before = await registry.window_messages(chat_id)
    assert before[0].content == "sys" and before[1].content != "message 0"
    ray.kill(ray.get_actor(actor_name(chat_id), namespace=NAMESPACE), no_restart=True)
    after = await registry.window_messages(chat_id)
    assert after == before
    plan = await turn(registry, chat_id, "after the crash")
    assert plan.messages[-1]["content"] == "after the crash"


async def test_two_concurrent_turns_on_one_chat_are_serialised(registry: ChatRegistry, chat_id: str) -> None:
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


async def test_another_user_gets_a_permission_error_through_ray(registry: ChatRegistry, chat_id: str) -> None:
    await turn(registry, chat_id, "private")
    with pytest.raises(PermissionDenied, match="another user"):
        await registry.begin_turn(chat_id, ask("let me in", user="intruder"))
    with pytest.raises(NotFound):
        await registry.describe(chat_id + "-none", "u1")


async def test_actor_processes_import_neither_tiktoken_nor_openai(
    registry: ChatRegistry, chat_id: str
) -> None:
    await turn(registry, chat_id, "hello")
    stats = await registry.call(chat_id, "stats")
    assert stats["chat_id"] == chat_id
    assert stats["gateway_modules"] == []


async def test_an_idle_actor_passivates_and_reactivates_with_the_same_window(
    ray_session: str, db_url: DatabaseURL, chat_id: str
) -> None:
    registry = ChatRegistry(ActorConfig(db_url, turn_timeout=60, idle_seconds=0.5))
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
