"""Shared fixtures: real MariaDB/MySQL and SQLite stores, one local Ray per session, a fake LLM."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from store import ChatStore, DatabaseURL, open_store
from store.errors import Unavailable
from store.migrate import migrate
from tests.llm_server import Behaviour, FakeLLM

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("AUTO_TITLE", "0")  # served processes: no title requests among counted LLM calls
DEFAULT_MYSQL = "mysql://chatservice:chatservice@127.0.0.1:3306/chatservice_test"


def mysql_required() -> bool:
    return os.environ.get("CHATSERVICE_REQUIRE_MYSQL") == "1"


@pytest.fixture(scope="session")
def mysql_url() -> DatabaseURL:
    """The test MariaDB/MySQL (TEST_DATABASE_URL), migrated; skipped if absent unless CI requires it."""
    url = DatabaseURL.parse(os.environ.get("TEST_DATABASE_URL", DEFAULT_MYSQL))
    try:
        asyncio.run(migrate(url))
    except Unavailable as exc:
        if mysql_required():
            raise
        pytest.skip(f"no MariaDB/MySQL at {url.redacted()}: {exc}")
    return url


def scratch_name(url: DatabaseURL, tag: str) -> str:
    """A new database name prefixed by TEST_DATABASE_URL's own (its user may have rights on `<name>%` only)."""
    suffix = f"_{tag}{uuid.uuid4().hex[:10]}"
    return url.database[: 64 - len(suffix)] + suffix  # MySQL names are at most 64 characters


@asynccontextmanager
async def scratch_database(url: DatabaseURL, tag: str = "m") -> AsyncIterator[DatabaseURL]:
    """An empty database of its own on the test server, dropped afterwards."""
    import asyncmy

    name = scratch_name(url, tag)
    conn = await asyncmy.connect(
        host=url.host, port=url.port, user=url.user, password=url.password, autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        try:
            yield replace(url, database=name)
        finally:
            async with conn.cursor() as cur:
                await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        await conn.ensure_closed()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> DatabaseURL:
    url = DatabaseURL.parse(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'chats.db'}")
    asyncio.run(migrate(url))
    return url


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request: pytest.FixtureRequest) -> DatabaseURL:
    """Each storage test runs on both databases."""
    return request.getfixturevalue(f"{request.param}_url")  # type: ignore[no-any-return]


@pytest.fixture
async def store(db_url: DatabaseURL) -> AsyncIterator[ChatStore]:
    s = open_store(db_url, pool_size=2)
    yield s
    await s.close()


@pytest.fixture
def chat_id() -> str:
    return f"t-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """One local Ray for the whole session; yields its GCS address for subprocesses to join."""
    import logging

    import ray

    from actors.names import NAMESPACE

    # address="local": a Ray of our own, never one that happens to run on this machine already.
    ray.init(address="local", namespace=NAMESPACE, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The session's fake LLM with default behaviour and an empty record (default again afterwards,
    for tests that use the session's server without this fixture)."""
    llm_server.behaviour = Behaviour()
    llm_server.records.clear()
    llm_server.calls.clear()
    yield llm_server
    llm_server.behaviour = Behaviour()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports() -> dict[str, str]:
    """WEB_SERVER_PORT and GRPC_SERVER_PORT for a served process of a test, never the defaults."""
    return {"WEB_SERVER_PORT": str(free_port()), "GRPC_SERVER_PORT": str(free_port())}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
