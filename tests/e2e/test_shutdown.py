"""SIGTERM to `chatservice serve`: running HTTP turns (SSE and JSON) drain within the grace period."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
import uuid
from typing import Any

import aiohttp
import pytest

from store import DatabaseURL, open_store
from store.records import MessageRecord, MessageStatus, Role
from tests.http_support import parse_events
from tests.llm_server import FakeLLM, words_reply
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
SSE = {"Accept": "text/event-stream"}


def env(ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, grace: str) -> dict[str, str]:
    return {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "SHUTDOWN_GRACE_SECONDS": grace,
    }


async def new_chat(session: aiohttp.ClientSession, base: str, user: str) -> str:
    async with session.post(f"{base}/v1/users/{user}/chats", json={}) as r:
        assert r.status == 201
        return str((await r.json())["chat_id"])


async def first_delta(response: aiohttp.ClientResponse) -> bytes:
    """Read until the first delta event has arrived; returns what was read."""
    buffer = b""
    while b"event: delta" not in buffer:
        chunk = await response.content.readany()
        assert chunk, "the stream ended before its first delta"
        buffer += chunk
    return buffer


async def rest_of(response: aiohttp.ClientResponse) -> bytes:
    """Everything still to come, up to the end of the stream or the server cutting it."""
    buffer = b""
    with contextlib.suppress(aiohttp.ClientPayloadError):
        while chunk := await response.content.readany():
            buffer += chunk
    return buffer


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def refused_soon(port: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while not refuses_connections(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return refuses_connections(port)


async def stored(url: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(url)
    try:
        return await store.list_messages(chat_id)
    finally:
        await store.close()


async def test_sigterm_lets_running_sse_and_json_turns_finish_and_refuses_new_ones(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour.reply = words_reply(40)
    fake_llm.behaviour.token_delay = 0.15
    user = f"u-{uuid.uuid4().hex[:8]}"
    with ServeProcess(env(ray_session, mysql_url, fake_llm, grace="60")) as serve:
        assert serve.proc is not None
        async with aiohttp.ClientSession() as session:
            sse_chat = await new_chat(session, serve.url, user)
            sse = await session.post(
                f"{serve.url}/v1/users/{user}/chats/{sse_chat}/messages",
                json={"content": "long"},
                headers=SSE,
            )
            head = await first_delta(sse)
            as_json = asyncio.ensure_future(
                session.post(f"{serve.url}/chat", json={"user_id": user, "user_message": "long too"})
            )
            assert await asyncio.to_thread(fake_llm.wait_for, lambda: len(fake_llm.records) >= 2)
            serve.proc.send_signal(signal.SIGTERM)
            refused = await asyncio.to_thread(refused_soon, serve.web_port)
            refused_while_draining = refused and not sse.content.at_eof()
            events = parse_events(head + await rest_of(sse))
            json_response = await as_json
            answer: dict[str, Any] = await json_response.json()
        code = await asyncio.to_thread(serve.proc.wait, 60)
    assert refused_while_draining
    everything = " ".join(f"w{i}" for i in range(40))
    assert [name for name, _ in events][-1] == "end"
    assert "".join(data["text"] for name, data in events if name == "delta") == everything
    assert json_response.status == 200 and answer["content"] == everything
    assert code == 0, serve.output()
    assert "running turns get 60 s to finish" in serve.output() and "chatservice: stopped" in serve.output()
    last = (await stored(mysql_url, sse_chat))[-1]
    assert (last.role, last.status, last.content) == (Role.ASSISTANT, MessageStatus.COMPLETE, everything)


async def test_a_turn_longer_than_the_grace_period_is_cut_and_kept_as_interrupted(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour.reply = words_reply(200)
    fake_llm.behaviour.token_delay = 0.2
    user = f"u-{uuid.uuid4().hex[:8]}"
    with ServeProcess(env(ray_session, mysql_url, fake_llm, grace="1")) as serve:
        assert serve.proc is not None
        async with aiohttp.ClientSession() as session:
            chat_id = await new_chat(session, serve.url, user)
            sse = await session.post(
                f"{serve.url}/v1/users/{user}/chats/{chat_id}/messages",
                json={"content": "very long"},
                headers=SSE,
            )
            head = await first_delta(sse)
            serve.proc.send_signal(signal.SIGTERM)
            head += await rest_of(sse)
        code = await asyncio.to_thread(serve.proc.wait, 60)
    events = parse_events(head.rpartition(b"\n\n")[0] + b"\n\n")
    assert code == 0, serve.output()
    assert "end" not in [name for name, _ in events]
    received = "".join(data["text"] for name, data in events if name == "delta")
    assert received and len(received.split()) < 200
    last = (await stored(mysql_url, chat_id))[-1]
    assert (last.role, last.status) == (Role.ASSISTANT, MessageStatus.INTERRUPTED)
    assert last.content.startswith(received.strip()) and len(last.content.split()) < 200
