"""Smoke: the HTTP and gRPC gateways on the Ray router (actors on the session's Ray, MariaDB).

Every other gateway test runs on in-process conversations; these keep the wiring to Ray honest.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from store import DatabaseURL
from tests.grpc_support import MakeServer, grpc_servers, original_proto, stored, turn_events
from tests.http_support import MakeClient, app_clients, parse_events
from tests.llm_server import FakeLLM

__all__ = ["original_proto"]
pytestmark = pytest.mark.ray


@pytest.fixture
async def make_client(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> AsyncIterator[MakeClient]:
    async with app_clients(mysql_url, fake_llm, ray=True) as make:
        yield make


@pytest.fixture
async def make_server(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType]
) -> AsyncIterator[MakeServer]:
    async with grpc_servers(mysql_url, fake_llm, original_proto, ray=True) as make:
        yield make


async def test_an_http_chat_lives_in_its_actor_and_readiness_checks_ray(
    make_client: MakeClient, mysql_url: DatabaseURL
) -> None:
    client = await make_client()
    user = f"user-{uuid.uuid4().hex[:8]}"
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["checks"] == {"ray": True, "store": True}
    r = await client.post(f"/v1/users/{user}/chats", json={})
    chat_id = (await r.json())["chat_id"]
    url = f"/v1/users/{user}/chats/{chat_id}"
    r = await client.post(
        f"{url}/messages", json={"content": "on Ray"}, headers={"Accept": "text/event-stream"}
    )
    events = parse_events(await r.read())
    assert events[0][0] == "start" and events[-1][0] == "end"
    assert (await (await client.post(f"{url}/end")).json())["status"] == "ended"
    assert [m.content for m in await stored(mysql_url, chat_id)][1:] == ["on Ray", "Echo: on Ray"]


async def test_a_grpc_turn_and_its_chat_on_ray(make_server: MakeServer, mysql_url: DatabaseURL) -> None:
    served = await make_server()
    user = f"user-{uuid.uuid4().hex[:8]}"
    started, *_, finished = await turn_events(served, user, "one two")
    chat_id = started.started.chat_id
    assert started.started.chat_created and finished.finished.assistant_message_id == 3
    chat = await served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=chat_id))
    assert chat.window.message_count == 3
    again = await turn_events(served, user, "three", chat_id)
    assert again[-1].finished.assistant_message_id == 5
    assert [m.content for m in await stored(mysql_url, chat_id)][1:] == [
        "one two",
        "Echo: one two",
        "three",
        "Echo: three",
    ]
