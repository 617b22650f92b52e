"""The turn protocol at its edges on the served process: long answers, clients that give up, foreign ids.

Each test runs `chatservice serve` on the session's Ray and MariaDB, in a Ray namespace of its own,
and checks what the database holds afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any
from urllib.parse import quote

import aiohttp
import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc
from store import DatabaseURL, open_store
from store.records import MessageRecord, MessageStatus, Role
from tests.faults.ledger import Verdict, compare_windows, live_actor_names
from tests.grpc_support import original_proto
from tests.llm_server import Behaviour, FakeLLM, words_reply
from tests.serve_process import ServeProcess

__all__ = ["original_proto"]
pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.timeout(600)]
TOKEN = "turns-token"
AUTH = (("authorization", TOKEN),)


def serve_env(ray_address: str, db: DatabaseURL, llm: FakeLLM, **extra: str) -> dict[str, str]:
    return {
        "RAY_ADDRESS": ray_address,
        "RAY_NAMESPACE": f"turns-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": db.to_url(),
        "OPENAI_API_KEY": "sk-turns",
        "OPENAI_BASE_URL": llm.base_url,
        "AUTO_TITLE": "0",
        "AUTH_TOKEN": TOKEN,
        "CHAT_TURNS_PER_MINUTE": "0",
        "USER_TURNS_PER_MINUTE": "0",
        **extra,
    }


class Api:
    """The /v1 API and legacy /chat of a served process, as a client sees them."""

    def __init__(self, serve: ServeProcess, session: aiohttp.ClientSession) -> None:
        self.base = serve.url
        self.session = session

    def chat_url(self, user: str, chat_id: str = "") -> str:
        url = f"{self.base}/v1/users/{quote(user, safe='')}/chats"
        return f"{url}/{chat_id}" if chat_id else url

    async def call(self, method: str, url: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, url, json=body, **kw) as r:
            return r.status, await r.json(content_type=None) if r.status != 204 else None

    async def create(self, user: str) -> str:
        status, body = await self.call("POST", self.chat_url(user), {})
        assert status == 201, body
        return str(body["chat_id"])

    async def send(self, user: str, chat_id: str, content: str) -> tuple[int, Any]:
        return await self.call("POST", self.chat_url(user, chat_id) + "/messages", {"content": content})


@asynccontextmanager
async def api_of(serve: ServeProcess) -> AsyncIterator[Api]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield Api(serve, session)


async def stored(db: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    """Every message of the chat in the database, erased ones too."""
    store = open_store(db, pool_size=1)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


async def until(predicate: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came"
        await asyncio.sleep(0.05)


# -- 6. a long answer keeps its turn ---------------------------------------------------------


async def test_an_answer_longer_than_the_turn_lease_keeps_its_turn(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(token_delay=0.1, reply=words_reply(40))  # ~4 s: four leases
    whole = " ".join(f"w{i}" for i in range(40))
    with ServeProcess(serve_env(ray_session, mysql_url, fake_llm, TURN_TIMEOUT_SECONDS="1")) as serve:
        async with api_of(serve) as api:
            chat_id = await api.create("long")
            first = asyncio.ensure_future(api.send("long", chat_id, "a long question"))
            await until(lambda: len(fake_llm.records) == 1)
            second = asyncio.ensure_future(api.send("long", chat_id, "the next question"))
            (s1, b1), (s2, b2) = await asyncio.gather(first, second)
    assert (s1, b1["content"], s2, b2["content"]) == (200, whole, 200, whole), (b1, b2)
    turns = [
        (m.role, m.content, m.status) for m in await stored(mysql_url, chat_id) if m.role is not Role.SYSTEM
    ]
    assert turns == [
        (Role.USER, "a long question", MessageStatus.COMPLETE),
        (Role.ASSISTANT, whole, MessageStatus.COMPLETE),
        (Role.USER, "the next question", MessageStatus.COMPLETE),
        (Role.ASSISTANT, whole, MessageStatus.COMPLETE),
    ]
    # The second turn began only after the first was stored: its prompt holds the whole answer.
    assert {"role": "assistant", "content": whole} in fake_llm.records[1].body["messages"]


async def test_a_gateway_killed_mid_stream_frees_the_chat_after_the_lease(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(failures=collections.deque(["hang"]))  # the first answer never comes
    env = serve_env(ray_session, mysql_url, fake_llm, TURN_TIMEOUT_SECONDS="2")
    first = ServeProcess(env).start()
    try:
        async with api_of(first) as api:
            chat_id = await api.create("crash")
            lost = asyncio.ensure_future(api.send("crash", chat_id, "asked before the crash"))
            await until(lambda: len(fake_llm.records) == 1)
            first.kill()  # SIGKILL: the gateway is really gone, and renews nothing any more
            with pytest.raises(aiohttp.ClientError):
                await lost
    finally:
        first.kill()
    with ServeProcess(env) as second:
        async with api_of(second) as api:
            status, body = await api.send("crash", chat_id, "asked after the crash")
    assert status == 200 and body["content"] == "Echo: asked after the crash", body
    turns = [(m.role, m.content) for m in await stored(mysql_url, chat_id) if m.role is not Role.SYSTEM]
    assert turns == [
        (Role.USER, "asked before the crash"),
        (Role.USER, "asked after the crash"),
        (Role.ASSISTANT, "Echo: asked after the crash"),
    ]


# -- 11. clients that give up before their turn begins ---------------------------------------


async def give_up_over_sse(api: Api, user: str, chat_id: str, content: str) -> list[bytes]:
    """Send with SSE and hang up after a second; returns what arrived (no `start` expected)."""
    url = api.chat_url(user, chat_id) + "/messages"
    got: list[bytes] = []
    try:
        async with api.session.post(
            url,
            json={"content": content},
            headers={"Accept": "text/event-stream"},
            timeout=aiohttp.ClientTimeout(total=1.0),
        ) as r:
            async for chunk in r.content.iter_any():
                got.append(chunk)
    except TimeoutError:
        pass
    return got


async def collect(stream: Any, into: list[Any]) -> None:
    async for event in stream:
        into.append(event)


async def give_up_over_grpc(target: str, legacy: Any, user: str, chat_id: str, content: str) -> list[Any]:
    """One RPC that gives up after a second (its deadline); v1 SendMessage or the legacy ChatStream."""
    chat_pb2, chat_pb2_grpc = legacy
    got: list[Any] = []
    async with grpc.aio.insecure_channel(target) as channel:
        if chat_pb2 is None:
            call = pb_grpc.ChatServiceStub(channel).SendMessage(
                pb.SendMessageRequest(user_id=user, chat_id=chat_id, content=content),
                metadata=AUTH,
                timeout=1.0,
            )
        else:
            call = chat_pb2_grpc.ChatServiceStub(channel).ChatStream(
                chat_pb2.ChatRequest(user_id=user, chat_id=chat_id, user_message=content),
                metadata=AUTH,
                timeout=1.0,
            )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await collect(call, got)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED, info.value
    return got


async def test_clients_that_give_up_while_queued_leave_nothing_stored(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType]
) -> None:
    fake_llm.behaviour = Behaviour(token_delay=0.1, reply=words_reply(60))  # ~6 s
    env = serve_env(ray_session, mysql_url, fake_llm)
    with ServeProcess(env) as serve:
        target = f"127.0.0.1:{serve.grpc_port}"
        async with api_of(serve) as api:
            chat_id = await api.create("patient")
            slow = asyncio.ensure_future(api.send("patient", chat_id, "the slow one"))
            await until(lambda: len(fake_llm.records) == 1)
            gave_up = await asyncio.gather(
                *(give_up_over_sse(api, "patient", chat_id, f"gave up over SSE {i}") for i in range(10)),
                *(
                    give_up_over_grpc(target, (None, None), "patient", chat_id, f"gave up over v1 {i}")
                    for i in range(5)
                ),
                *(
                    give_up_over_grpc(target, original_proto, "patient", chat_id, f"gave up over legacy {i}")
                    for i in range(5)
                ),
            )
            assert not any(gave_up), gave_up  # not one of them saw its turn start
            status, body = await slow
            assert status == 200, body
            fake_llm.behaviour = Behaviour()
            status, body = await api.send("patient", chat_id, "one more")
            assert status == 200 and body["content"] == "Echo: one more", body
        users = [m.content for m in await stored(mysql_url, chat_id) if m.role is Role.USER]
        assert users == ["the slow one", "one more"]
        store = open_store(mysql_url, pool_size=1)
        try:
            verdict = Verdict()
            compared = await compare_windows(env["RAY_NAMESPACE"], store, verdict)
        finally:
            await store.close()
        assert compared == 1 and verdict.window_mismatches == 0, verdict.problems
    assert len(fake_llm.records) == 2  # the LLM was asked for no turn that was given up


# -- 12. another user's requests do not wake the owner's actor -------------------------------


async def foreign_grpc_calls(target: str, legacy: tuple[ModuleType, ModuleType], chat_id: str) -> list[Any]:
    chat_pb2, chat_pb2_grpc = legacy
    codes = []
    async with grpc.aio.insecure_channel(target) as channel:
        v1 = pb_grpc.ChatServiceStub(channel)
        calls = [
            lambda: v1.CreateChat(pb.CreateChatRequest(user_id="mallory", chat_id=chat_id), metadata=AUTH),
            lambda: v1.GetChat(pb.GetChatRequest(user_id="mallory", chat_id=chat_id), metadata=AUTH),
            lambda: v1.EndChat(pb.EndChatRequest(user_id="mallory", chat_id=chat_id), metadata=AUTH),
            lambda: v1.DeleteChat(pb.DeleteChatRequest(user_id="mallory", chat_id=chat_id), metadata=AUTH),
            lambda: v1.ListMessages(
                pb.ListMessagesRequest(user_id="mallory", chat_id=chat_id), metadata=AUTH
            ),
        ]
        for unary in calls:
            try:
                await unary()
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
        streams = [
            v1.SendMessage(
                pb.SendMessageRequest(user_id="mallory", chat_id=chat_id, content="hi"), metadata=AUTH
            ),
            chat_pb2_grpc.ChatServiceStub(channel).ChatStream(
                chat_pb2.ChatRequest(user_id="mallory", chat_id=chat_id, user_message="hi"), metadata=AUTH
            ),
        ]
        for stream in streams:
            try:
                async for _ in stream:
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
    return codes


async def test_another_users_requests_do_not_wake_the_owners_passivated_actor(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType]
) -> None:
    env = serve_env(ray_session, mysql_url, fake_llm, CHAT_IDLE_SECONDS="3")
    namespace = env["RAY_NAMESPACE"]
    with ServeProcess(env) as serve:
        async with api_of(serve) as api:
            chat_id = await api.create("owner")
            status, _ = await api.send("owner", chat_id, "hello")  # this gateway has served the chat
            assert status == 200
            await until(lambda: not live_actor_names(namespace), within=60)  # passivated
            url = api.chat_url("mallory", chat_id)
            answers = [
                await api.call("GET", url),
                await api.call("POST", url + "/end"),
                await api.call("DELETE", url),
                await api.call("GET", url + "/messages"),
                await api.send("mallory", chat_id, "hi"),
                await api.call(
                    "POST",
                    f"{api.base}/chat",
                    {"user_id": "mallory", "chat_id": chat_id, "user_message": "hi"},
                ),
            ]
            taken = await api.call("POST", api.chat_url("mallory"), {"chat_id": chat_id})
            codes = await foreign_grpc_calls(f"127.0.0.1:{serve.grpc_port}", original_proto, chat_id)
            assert live_actor_names(namespace) == []  # no request woke the owner's actor
            status, chat = await api.call("GET", api.chat_url("owner", chat_id))
    assert [s for s, _ in answers] == [403] * 6, answers
    assert taken[0] == 409, taken  # creating a chat with the taken id: refused from the store
    assert codes == [grpc.StatusCode.ALREADY_EXISTS] + [grpc.StatusCode.PERMISSION_DENIED] * 6
    assert status == 200 and chat["status"] == "active"  # and the owner's chat is untouched
