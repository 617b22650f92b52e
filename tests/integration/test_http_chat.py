"""POST /chat and health through aiohttp's test client against the real app, Ray and store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateways.serve import build_runtime
from gateways.settings import Settings
from store import DatabaseURL, open_store
from tests.llm_server import FakeLLM

MakeClient = Callable[..., Coroutine[Any, Any, TestClient]]  # type: ignore[type-arg]


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    made: list[Any] = []

    async def make(**env: str) -> TestClient:  # type: ignore[type-arg]
        base = {
            "DATABASE_URL": db_url.to_url(),
            "OPENAI_API_KEY": "k",
            "OPENAI_BASE_URL": fake_llm.base_url,
            "AUTO_TITLE": "0",
        }
        runtime = build_runtime(Settings.from_env(base | env), in_process=True)
        from gateways.http.app import create_app

        app = create_app(runtime.settings, runtime.service, runtime.readiness)
        client = TestClient(TestServer(app))  # type: ignore[var-annotated]
        await client.start_server()
        made.append((client, runtime))
        return client

    yield make
    for client, runtime in made:
        await client.close()
        await runtime.close()


async def test_a_conversation_over_post_chat(make_client: MakeClient, db_url: DatabaseURL) -> None:
    client = await make_client()
    r = await client.post("/chat", json={"user_id": "u1", "user_message": "Qual é a capital do Brasil?"})
    assert r.status == 200
    first = await r.json()
    assert first["user_id"] == "u1" and first["content"] == "Echo: Qual é a capital do Brasil?"
    r = await client.post(
        "/chat", json={"chat_id": first["chat_id"], "user_id": "u1", "user_message": "E da Argentina?"}
    )
    second = await r.json()
    assert second == {"chat_id": first["chat_id"], "user_id": "u1", "content": "Echo: E da Argentina?"}
    store = open_store(db_url)
    stored = await store.list_messages(first["chat_id"])
    await store.close()
    assert [m.content for m in stored][1:] == [
        "Qual é a capital do Brasil?",
        "Echo: Qual é a capital do Brasil?",
        "E da Argentina?",
        "Echo: E da Argentina?",
    ]


async def test_a_chat_id_that_does_not_exist_yet_is_created_with_it(
    make_client: MakeClient, chat_id: str
) -> None:
    client = await make_client()
    r = await client.post("/chat", json={"chat_id": chat_id, "user_id": "u1", "user_message": "oi"})
    assert r.status == 200 and (await r.json())["chat_id"] == chat_id


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_argument"),
        (b"[1, 2]", 400, "invalid_argument"),
        (b'{"user_message": "hi"}', 400, "invalid_argument"),
        (b'{"user_id": "u1", "user_message": 42}', 400, "invalid_argument"),
        (b'{"user_id": "u1", "user_message": "   "}', 400, "invalid_argument"),
        (b'{"user_id": "u1", "chat_id": "bad id!", "user_message": "hi"}', 400, "invalid_argument"),
        (b'{"user_id": "u1", "user_message": "' + b"x" * 2000 + b'"}', 413, "message_too_large"),
        (b'{"user_id": "u1", "user_message": "' + b"x" * 5000 + b'"}', 413, "message_too_large"),
    ],
)
async def test_bad_requests_get_a_json_error_and_store_nothing(
    make_client: MakeClient, fake_llm: FakeLLM, body: bytes, status: int, code: str
) -> None:
    client = await make_client(MAX_MESSAGE_CHARS="1000", MAX_BODY_BYTES="4096")
    r = await client.post("/chat", data=body, headers={"Content-Type": "application/json"})
    assert r.status == status
    assert (await r.json())["error"]["code"] == code
    assert fake_llm.records == []


async def test_a_body_in_a_charset_python_does_not_know_is_400_not_500(make_client: MakeClient) -> None:
    """Found by the fuzz suite: `charset=bogus` failed the JSON decode with a LookupError."""
    client = await make_client()
    r = await client.post(
        "/chat",
        data=b'{"user_id": "u1", "user_message": "hi"}',
        headers={"Content-Type": "application/json; charset=bogus"},
    )
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_argument"


async def test_auth_accepts_the_token_plain_or_bearer_and_nothing_else(make_client: MakeClient) -> None:
    client = await make_client(AUTH_TOKEN="s3cret")
    body = {"user_id": "u1", "user_message": "hi"}
    for header in (
        {},
        {"Authorization": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
    ):
        r = await client.post("/chat", json=body, headers=header)
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthenticated"
    for header in ({"Authorization": "s3cret"}, {"Authorization": "Bearer s3cret"}):
        assert (await client.post("/chat", json=body, headers=header)).status == 200
    assert (await client.get("/healthz")).status == 200


async def test_a_token_that_is_not_utf8_is_401_not_500(make_client: MakeClient) -> None:
    """Found by the fuzz suite: header bytes that are not UTF-8 used to fail the token check."""
    client = await make_client(AUTH_TOKEN="s3cret")
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3\x80\xffcret\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 401") and json.loads(body)["error"]["code"] == "unauthenticated"


async def test_another_users_chat_is_forbidden(make_client: MakeClient) -> None:
    client = await make_client()
    r = await client.post("/chat", json={"user_id": "alice", "user_message": "secret"})
    chat_id = (await r.json())["chat_id"]
    r = await client.post("/chat", json={"chat_id": chat_id, "user_id": "mallory", "user_message": "show me"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "permission_denied"


async def test_llm_down_is_503_and_llm_rate_limit_is_429(make_client: MakeClient, fake_llm: FakeLLM) -> None:
    client = await make_client()
    fake_llm.behaviour.failures.extend([500, 500, 500])
    r = await client.post("/chat", json={"user_id": "u1", "user_message": "hi"})
    assert r.status == 503 and (await r.json())["error"]["code"] == "unavailable"
    fake_llm.behaviour.failures.extend([429, 429, 429])
    r = await client.post("/chat", json={"user_id": "u1", "user_message": "hi"})
    assert r.status == 429


async def test_the_store_down_is_503_and_not_ready(make_client: MakeClient) -> None:
    from tests.conftest import free_port

    client = await make_client(DATABASE_URL=f"mysql://u:p@127.0.0.1:{free_port()}/nowhere")
    r = await client.post("/chat", json={"user_id": "u1", "user_message": "hi"})
    assert r.status == 503 and "database" in (await r.json())["error"]["message"]
    r = await client.get("/readyz")
    assert r.status == 503 and (await r.json())["checks"]["store"] is False


async def test_health_and_readiness(make_client: MakeClient) -> None:
    client = await make_client()
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["ready"] is True
