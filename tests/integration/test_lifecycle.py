"""The virtual-actor lifecycle on a real local Ray: the live cap, LRU passivation, and the races."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import ray

from actors.actor import ActorConfig
from actors.names import NAMESPACE, actor_name
from actors.protocol import NewChat, TurnPlan, TurnRequest
from actors.router import ConversationRouter
from store import ChatStore, DatabaseURL
from store.errors import ResourceExhausted
from store.records import ChatParams

pytestmark = pytest.mark.ray
MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=400, max_tokens=50), "sys", 10)


def registry_for(
    db_url: DatabaseURL, cap: int = 1000, wait: float = 10.0, directory: str = ""
) -> ConversationRouter:
    """A registry with its own directory, as a deployment with these limits would have."""
    name = directory or f"directory-{uuid.uuid4().hex[:8]}"
    config = ActorConfig(db_url, turn_timeout=60, idle_seconds=600, directory=name)
    return ConversationRouter(config, cap, wait, evict_grace_seconds=0.0)


def ask(content: str, turn_id: str | None = None) -> TurnRequest:
    return TurnRequest(turn_id or uuid.uuid4().hex, "u1", content, 12, MODEL, NEW)


async def begin(registry: ConversationRouter, chat_id: str, content: str) -> TurnPlan:
    plan = await registry.begin_turn(chat_id, ask(content))
    assert isinstance(plan, TurnPlan)
    return plan


async def turn(registry: ConversationRouter, chat_id: str, content: str) -> None:
    plan = await begin(registry, chat_id, content)
    await registry.complete_turn(chat_id, plan.turn_id, f"re: {content}", 12, "stop")


def is_live(chat_id: str) -> bool:
    try:
        ray.get_actor(actor_name(chat_id), namespace=NAMESPACE)
    except ValueError:
        return False
    return True


async def wait_until(predicate: object, within: float = 15.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return bool(predicate())  # type: ignore[operator]


def new_chats(n: int) -> list[str]:
    return [f"life-{uuid.uuid4().hex}" for _ in range(n)]


async def test_the_cap_passivates_the_least_recently_used_chat(ray_session: str, db_url: DatabaseURL) -> None:
    registry = registry_for(db_url, cap=2)
    a, b, c = new_chats(3)
    await turn(registry, a, "first")
    await turn(registry, b, "second")
    await turn(registry, a, "a again")  # b is now the least recently used
    await asyncio.sleep(1.5)  # the touch reaches the directory in its next batch
    await turn(registry, c, "third")
    assert await wait_until(lambda: not is_live(b))
    assert is_live(a) and is_live(c)
    assert sorted(await registry.live_chats()) == sorted([a, c])
    before = [m.content for m in await registry.window_messages(b)]  # b comes back; a or c goes
    assert before == ["sys", "second", "re: second"]
    assert len(await registry.live_chats()) == 2


async def test_when_every_live_chat_is_busy_a_new_one_waits_then_is_refused(
    ray_session: str, db_url: DatabaseURL
) -> None:
    registry = registry_for(db_url, cap=1, wait=1.0)
    busy, waiting = new_chats(2)
    plan = await begin(registry, busy, "a long answer is streaming")
    with pytest.raises(ResourceExhausted, match="busy"):
        await registry.begin_turn(waiting, ask("no room"))
    late = asyncio.ensure_future(turn(registry, waiting, "room soon"))
    await asyncio.sleep(0.3)
    assert not late.done()
    await registry.complete_turn(busy, plan.turn_id, "done", 3, "stop")
    await asyncio.wait_for(late, 15)  # the busy chat went idle, was passivated, and made room
    assert await wait_until(lambda: not is_live(busy))


async def test_a_call_that_meets_a_passivated_actor_runs_once_on_a_fresh_one(
    ray_session: str, db_url: DatabaseURL, store: ChatStore
) -> None:
    name = f"directory-{uuid.uuid4().hex[:8]}"
    gateway_a, gateway_b = registry_for(db_url, directory=name), registry_for(db_url, directory=name)
    (chat,) = new_chats(1)
    await turn(gateway_a, chat, "hello")  # gateway_a now caches a handle to this activation
    assert await gateway_b.passivate_all() >= 1
    assert await wait_until(lambda: not is_live(chat))
    await turn(gateway_a, chat, "after passivation")
    contents = [m.content for m in await store.list_messages(chat, include_erased=True)]
    assert contents == ["sys", "hello", "re: hello", "after passivation", "re: after passivation"]


async def test_two_gateways_activating_one_chat_at_once_share_one_actor(
    ray_session: str, db_url: DatabaseURL, store: ChatStore
) -> None:
    name = f"directory-{uuid.uuid4().hex[:8]}"
    gateways = [registry_for(db_url, directory=name) for _ in range(2)]
    (chat,) = new_chats(1)
    await asyncio.gather(*(turn(g, chat, f"from gateway {i}") for i, g in enumerate(gateways)))
    pids = {(await g.stats(chat))["pid"] for g in gateways}
    assert len(pids) == 1
    contents = [m.content for m in await store.list_messages(chat)]
    assert sorted(contents[1::2]) == ["from gateway 0", "from gateway 1"]
    assert [c.removeprefix("re: ") for c in contents[2::2]] == contents[1::2]


async def test_an_actor_killed_mid_turn_completes_the_turn_on_a_fresh_activation(
    ray_session: str, db_url: DatabaseURL, store: ChatStore
) -> None:
    registry = registry_for(db_url)
    (chat,) = new_chats(1)
    await turn(registry, chat, "before")
    plan = await begin(registry, chat, "in flight when the actor dies")
    ray.kill(ray.get_actor(actor_name(chat), namespace=NAMESPACE), no_restart=True)
    result = await registry.complete_turn(chat, plan.turn_id, "the answer", 3, "stop")
    again = await registry.complete_turn(chat, plan.turn_id, "the answer", 3, "stop")
    assert result.assistant_message_id == again.assistant_message_id == 5
    contents = [m.content for m in await store.list_messages(chat, include_erased=True)]
    assert contents == ["sys", "before", "re: before", "in flight when the actor dies", "the answer"]
    window = [m.content for m in await registry.window_messages(chat)]
    assert window == contents
