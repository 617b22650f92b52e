"""Helpers for the HTTP gateway's tests: the real app on aiohttp's test server, and an SSE parser."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from gateways.http.app import create_app
from gateways.serve import Runtime, build_runtime
from gateways.settings import Settings
from store import DatabaseURL
from tests.llm_server import FakeLLM

MakeClient = Callable[..., Coroutine[Any, Any, TestClient]]  # type: ignore[type-arg]
Event = tuple[str, dict[str, Any]]


def base_env(db: DatabaseURL, llm: FakeLLM) -> dict[str, str]:
    # AUTO_TITLE=0: no title requests among the LLM requests tests count (tests turn it on to test it).
    return {
        "DATABASE_URL": db.to_url(),
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": llm.base_url,
        "AUTO_TITLE": "0",
    }


@asynccontextmanager
async def app_clients(db: DatabaseURL, llm: FakeLLM, *, ray: bool = False) -> AsyncIterator[MakeClient]:
    """Yields `make(**env)`: a started test client on a fresh runtime; all closed afterwards.

    The conversations run in this process (LocalConversations), or with `ray` on the session's
    Ray through the router.
    """
    made: list[tuple[TestClient, Runtime]] = []  # type: ignore[type-arg]

    async def make(**env: str) -> TestClient:  # type: ignore[type-arg]
        runtime = build_runtime(Settings.from_env(base_env(db, llm) | env), in_process=not ray)
        client = TestClient(TestServer(create_app(runtime.settings, runtime.service, runtime.readiness)))
        await client.start_server()
        made.append((client, runtime))
        return client

    yield make
    for client, runtime in made:
        await client.close()
        await runtime.close()


def parse_events(raw: bytes) -> list[Event]:
    """Parse a text/event-stream body: blocks split by a blank line, `event:` and `data:` lines."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, json.loads("\n".join(data))))
    return events


async def read_events(response: ClientResponse, count: int) -> tuple[list[Event], bytes]:
    """Read from a streaming response until `count` whole events arrived; returns them and the rest."""
    buffer = b""
    while buffer.count(b"\n\n") < count:
        chunk = await response.content.readany()
        if not chunk:
            break
        buffer += chunk
    head, _, rest = buffer.rpartition(b"\n\n")
    return parse_events(head + b"\n\n"), rest
