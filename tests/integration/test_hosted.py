"""The hosted placement on a real local Ray: routing, a host killed mid-turn, idle and LRU drops."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import ray

from actors.host import HostConfig, host_name
from actors.hosts import HostedRouter, host_of
from actors.inprocess import LocalConfig
from actors.protocol import NewChat, TurnPlan, TurnRequest
from gateways.serving.hosts import report
from gateways.settings import Settings
from store import ChatStore, DatabaseURL
from store.errors import InvalidArgument
from store.records import ChatParams, MessageStatus, Role

pytestmark = pytest.mark.ray
MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=400, max_tokens=50), "sys", 10)
Make = Callable[..., HostedRouter]


@pytest.fixture
async def hosted(ray_session: str, db_url: DatabaseURL) -> AsyncIterator[Make]:
    """Routers on hosts of a namespace of this test's own; the hosts end with the test."""
    namespace = f"hosted-{uuid.uuid4().hex[:8]}"
    made: list[HostedRouter] = []

    def make(hosts: int = 2, loaded: int = 10_000, idle: float = 600.0) -> HostedRouter:
        config = HostConfig(db_url, 2, LocalConfig(turn_timeout=60, loaded=loaded), idle, hosts, namespace)
        made.append(HostedRouter(config, wait_seconds=30.0))
        return made[-1]

    yield make
    for index in range(max((r.hosts for r in made), default=0)):
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(host_name(index), namespace=namespace), no_restart=True)


def ask(content: str) -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, "u1", content, 12, MODEL, NEW)


async def turn(router: HostedRouter, chat_id: str, content: str) -> None:
    plan = await router.begin_turn(chat_id, ask(content))
    assert isinstance(plan, TurnPlan)
    await router.complete_turn(chat_id, plan.turn_id, f"re: {content}", 12, "stop")


def new_chats(n: int) -> list[str]:
    return [f"hosted-{uuid.uuid4().hex}" for _ in range(n)]


async def live_by_host(router: HostedRouter) -> dict[int, int]:
    return {s["host"]: s["live"] for s in await router.stats()}


async def test_each_chat_lives_in_the_one_host_every_gateway_routes_it_to(hosted: Make) -> None:
    first = hosted(hosts=3)
    assert await first.start() == 3
    chats = new_chats(12)
    await asyncio.gather(*(turn(first, c, "hello") for c in chats))
    # A second gateway configured for another count routes by the deployment's, learnt from host 0.
    second = hosted(hosts=5)
    assert await second.start() == 3
    await asyncio.gather(*(turn(second, c, "again") for c in chats))
    expected = {i: sum(1 for c in chats if host_of(c, 3) == i) for i in range(3)}
    assert await live_by_host(first) == expected
    for chat_id in chats[:4]:
        name = first.locate(chat_id)
        handle = ray.get_actor(name, namespace=first._config.namespace)
        assert await handle.holds.remote(chat_id)
        others = [i for i in range(3) if host_name(i) != name]
        assert not any([await first.host(i).holds.remote(chat_id) for i in others])
        window = await second.window_messages(chat_id)
        assert [m.content for m in window] == ["sys", "hello", "re: hello", "again", "re: again"]


async def test_a_host_killed_mid_turn_restarts_and_the_turn_completes_with_nothing_lost(
    hosted: Make, store: ChatStore
) -> None:
    router = hosted(hosts=1)
    await router.start()
    chat_id, neighbour = new_chats(2)
    await turn(router, chat_id, "kept")
    await turn(router, neighbour, "kept too")
    plan = await router.begin_turn(chat_id, ask("in flight"))
    assert isinstance(plan, TurnPlan)
    (stats,) = await router.stats()
    os.kill(int(stats["pid"]), signal.SIGKILL)  # the process, as the OOM killer would
    # The gateway's next call finds the host restarting, retries, and the new host adopts the turn.
    result = await router.complete_turn(chat_id, plan.turn_id, "answered", 12, "stop")
    assert result.status is MessageStatus.COMPLETE
    (after,) = await router.stats()
    assert after["pid"] != stats["pid"]
    window = await router.window_messages(chat_id)
    assert [(m.role, m.content) for m in window][1:] == [
        (Role.USER, "kept"),
        (Role.ASSISTANT, "re: kept"),
        (Role.USER, "in flight"),
        (Role.ASSISTANT, "answered"),
    ]
    stored = await store.list_messages(chat_id)
    assert [(m.content, m.status) for m in stored][-1] == ("answered", MessageStatus.COMPLETE)
    assert [m.content for m in await router.window_messages(neighbour)][-1] == "re: kept too"


async def test_idle_chats_are_dropped_and_load_again_unchanged(hosted: Make) -> None:
    router = hosted(hosts=1, idle=1.0)
    await router.start()
    chats = new_chats(3)
    for chat_id in chats:
        await turn(router, chat_id, "before")
    before = [await router.window_messages(c) for c in chats]
    for _ in range(60):
        if await live_by_host(router) == {0: 0}:
            break
        await asyncio.sleep(0.25)
    assert await live_by_host(router) == {0: 0}
    assert [await router.window_messages(c) for c in chats] == before


async def test_beyond_the_cap_the_least_recently_used_idle_chats_are_dropped(hosted: Make) -> None:
    router = hosted(hosts=1, loaded=3)
    await router.start()
    chats = new_chats(6)
    for chat_id in chats:
        await turn(router, chat_id, "hi")
    assert await live_by_host(router) == {0: 3}
    host = router.host(0)
    assert [await host.holds.remote(c) for c in chats] == [False] * 3 + [True] * 3
    await turn(router, chats[0], "back")  # a dropped chat loads again, with its history
    assert [m.content for m in await router.window_messages(chats[0])][-2:] == ["back", "re: back"]


async def test_a_host_answers_only_the_ports_calls(hosted: Make) -> None:
    router = hosted(hosts=1)
    await router.start()
    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        await router.host(0).call.remote("_store", "some-chat")
    assert isinstance(caught.value.cause, InvalidArgument)


async def test_an_operator_lists_the_hosts_and_finds_a_chats_host(hosted: Make) -> None:
    router = hosted(hosts=2)
    await router.start()
    (chat_id,) = new_chats(1)
    await turn(router, chat_id, "hello")
    settings = Settings.from_env({"RAY_NAMESPACE": router._config.namespace})
    out = io.StringIO()
    assert await asyncio.to_thread(report, settings, chat_id, out) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["host:0", "host:1"]
    assert lines[2] == f"chat {chat_id}: {router.locate(chat_id)} (live)"
    nobody = Settings.from_env({"RAY_NAMESPACE": f"none-{uuid.uuid4().hex[:6]}"})
    assert await asyncio.to_thread(report, nobody, None, io.StringIO()) == 1
