"""gRPC test helpers: an in-process grpc.aio server on port 0, and stubs built from the original proto."""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc
from gateways.rpc.server import GrpcGateway
from gateways.serve import Runtime, build_runtime
from gateways.settings import Settings
from store import DatabaseURL, open_store
from store.records import MessageRecord
from tests.conftest import repo_root
from tests.llm_server import FakeLLM


@dataclass
class Served:
    """A running gateway and an aio channel to it."""

    target: str
    runtime: Runtime
    gateway: GrpcGateway
    channel: grpc.aio.Channel
    legacy: Any  # pb.ChatService stub from the original proto
    v1: pb_grpc.ChatServiceStub


MakeServer = Callable[..., Awaitable[Served]]


@pytest.fixture(scope="session")
def original_proto(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    """chat_pb2 and chat_pb2_grpc compiled from proto/chat.proto, as another client of it would."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("original_proto")
    proto_dir = repo_root() / "proto"
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", "chat.proto"]
    )
    assert code == 0
    sys.path.insert(0, str(out))
    return importlib.import_module("chat_pb2"), importlib.import_module("chat_pb2_grpc")


@asynccontextmanager
async def grpc_servers(
    db: DatabaseURL, llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType], *, ray: bool = False
) -> AsyncIterator[MakeServer]:
    """Yields `make(**env)`: a started gateway on a fresh runtime (in-process conversations, or
    with `ray` the router on the session's Ray) and a channel to it; all closed afterwards."""
    made: list[Served] = []

    async def make(**env: str) -> Served:
        base = {
            "DATABASE_URL": db.to_url(),
            "OPENAI_API_KEY": "k",
            "OPENAI_BASE_URL": llm.base_url,
            "AUTO_TITLE": "0",
            "GRPC_SERVER_PORT": "0",
        }
        runtime = build_runtime(Settings.from_env(base | env), in_process=not ray)
        gateway = GrpcGateway(runtime.settings, runtime.service, runtime.readiness)
        port = await gateway.start()
        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(target)
        served = Served(
            target,
            runtime,
            gateway,
            channel,
            original_proto[1].ChatServiceStub(channel),
            pb_grpc.ChatServiceStub(channel),
        )
        made.append(served)
        return served

    try:
        yield make
    finally:
        for s in made:
            await s.channel.close()
            await s.gateway.stop(0)
            await s.runtime.close()


@pytest.fixture
async def make_server(
    db_url: DatabaseURL, fake_llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType]
) -> AsyncIterator[MakeServer]:
    """gRPC gateways on in-process conversations, on SQLite and on MariaDB."""
    async with grpc_servers(db_url, fake_llm, original_proto) as make:
        yield make


async def stored(url: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(url)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> bool:
    """Poll an async condition until it holds or `within` seconds pass (no speed assumed)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


async def turn_events(served: Served, user: str, content: str, chat_id: str = "") -> list[pb.TurnEvent]:
    request = pb.SendMessageRequest(user_id=user, chat_id=chat_id, content=content)
    return [e async for e in served.v1.SendMessage(request)]
