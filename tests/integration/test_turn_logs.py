"""Log lines of real turns (Ray, MariaDB, the LLM test server): ids on every line, no text by default."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest

from gateways import logs
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.serve import build_runtime
from gateways.service.chats import ChatService
from gateways.settings import Settings
from store import DatabaseURL
from tests.grpc_support import MakeServer, make_server, original_proto
from tests.http_support import MakeClient, app_clients, parse_events
from tests.llm_server import FakeLLM

__all__ = ["make_server", "original_proto"]

SECRET = "my card number is 4111 1111 1111 1111"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records at INFO and above, with the ids the gateway's handlers add."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(logs.ContextFilter())
    yield caplog
    caplog.handler.filters.clear()


def ours(records: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in records.records if r.name.startswith("chatservice")]


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


@asynccontextmanager
async def service_with(db_url: DatabaseURL, fake_llm: FakeLLM, **env: str) -> AsyncIterator[ChatService]:
    base = {
        "DATABASE_URL": db_url.to_url(),
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
    }
    runtime = build_runtime(Settings.from_env(base | env), in_process=True)
    try:
        yield runtime.service
    finally:
        await runtime.close()


async def test_every_line_of_a_turn_names_its_chat_and_turn_and_holds_no_message_text(
    db_url: DatabaseURL,
    fake_llm: FakeLLM,
    records: pytest.LogCaptureFixture,
    user: str,
) -> None:
    async with service_with(db_url, fake_llm) as service:
        events = [e async for e in service.turn(user, None, SECRET)]
        chat_id = events[0].chat_id  # type: ignore[attr-defined]
    lines = ours(records)
    messages = [r.getMessage() for r in lines]
    assert any(m.startswith("turn began") for m in messages) and any(
        m.startswith("turn completed") for m in messages
    )
    assert {r.chat_id for r in lines} == {chat_id}  # type: ignore[attr-defined]
    turn_ids = {r.turn_id for r in lines}  # type: ignore[attr-defined]
    assert len(turn_ids) == 1 and None not in turn_ids
    assert not any("4111" in m for m in messages)


async def test_log_content_puts_the_user_message_and_the_answer_in_the_log(
    db_url: DatabaseURL,
    fake_llm: FakeLLM,
    records: pytest.LogCaptureFixture,
    user: str,
) -> None:
    async with service_with(db_url, fake_llm, LOG_CONTENT="1") as service:
        [e async for e in service.turn(user, None, SECRET)]
    messages = [r.getMessage() for r in ours(records) if r.levelno == logging.INFO]
    assert f"user message: {SECRET}" in messages and f"answer: Echo: {SECRET}" in messages


async def test_http_echoes_the_callers_request_id_and_logs_the_request_under_it(
    make_client: MakeClient, records: pytest.LogCaptureFixture, user: str
) -> None:
    client = await make_client()
    r = await client.post(
        "/chat", json={"user_id": user, "user_message": "hi"}, headers={"X-Request-Id": "req-42"}
    )
    assert r.status == 200 and r.headers["X-Request-Id"] == "req-42"
    chat_id = (await r.json())["chat_id"]
    turn = [r for r in ours(records) if r.chat_id == chat_id]  # type: ignore[attr-defined]
    assert turn and {r.request_id for r in turn} == {"req-42"}  # type: ignore[attr-defined]

    sse = await client.post(
        f"/v1/users/{user}/chats/{chat_id}/messages",
        json={"content": "again"},
        headers={"Accept": "text/event-stream", "X-Request-Id": "req-43"},
    )
    assert sse.headers["X-Request-Id"] == "req-43"
    assert [name for name, _ in parse_events(await sse.read())][-1] == "end"

    missing = await client.get(f"/v1/users/{user}/chats/nope")
    generated = missing.headers["X-Request-Id"]
    assert missing.status == 404 and len(generated) == 32 and generated != "req-43"
    bad = await client.get("/healthz", headers={"X-Request-Id": "no spaces allowed"})
    assert bad.headers["X-Request-Id"] != "no spaces allowed"


async def test_grpc_sends_back_the_callers_request_id_in_the_initial_metadata(
    make_server: MakeServer, records: pytest.LogCaptureFixture, user: str
) -> None:
    served = await make_server()
    call = served.v1.SendMessage(
        pb.SendMessageRequest(user_id=user, content="hi"), metadata=(("x-request-id", "rpc-7"),)
    )
    events = [e async for e in call]
    assert ("x-request-id", "rpc-7") in tuple(await call.initial_metadata())
    chat_id = events[0].started.chat_id
    turn = [r for r in ours(records) if r.chat_id == chat_id]  # type: ignore[attr-defined]
    assert turn and {r.request_id for r in turn} == {"rpc-7"}  # type: ignore[attr-defined]

    call = served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id="nope"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    generated = dict(await call.initial_metadata())["x-request-id"]
    assert len(generated) == 32
