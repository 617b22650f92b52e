"""Migrations: versioned, idempotent, and safe from several processes at once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncmy
import pytest

from store import DatabaseURL, open_store
from store.errors import Unavailable
from store.migrate import migrate, migrations
from store.records import ChatParams, ChatRecord
from tests.conftest import scratch_database
from tests.serve_process import run_cli

LATEST = migrations("sqlite")[-1].version


@pytest.fixture
async def scratch_mysql(mysql_url: DatabaseURL) -> AsyncIterator[DatabaseURL]:
    """An empty database of its own, named after TEST_DATABASE_URL's, dropped afterwards."""
    async with scratch_database(mysql_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "mysql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    if request.param == "sqlite":
        return DatabaseURL.parse(f"sqlite:///{tmp_path / 'fresh.db'}")
    return request.getfixturevalue("scratch_mysql")  # type: ignore[no-any-return]


def test_both_databases_ship_the_same_versions() -> None:
    assert [m.version for m in migrations("mysql")] == [m.version for m in migrations("sqlite")]


async def test_migrate_twice_applies_once_and_the_schema_works(empty_db: DatabaseURL) -> None:
    assert await migrate(empty_db) == [m.version for m in migrations(empty_db.kind)]
    assert await migrate(empty_db) == []
    store = open_store(empty_db)
    await store.create_chat(ChatRecord("c1", "u1", ChatParams("gpt-4o-mini", 128_000, 1024)), [])
    assert await store.get_chat("c1") is not None
    await store.close()


async def test_several_processes_migrating_at_once_all_succeed(empty_db: DatabaseURL) -> None:
    env = {**os.environ, "DATABASE_URL": empty_db.to_url()}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateways.cli",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [(await p.communicate())[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = [o for o in outputs if f"applied [{LATEST}]" in o or "applied [1" in o]
    assert len(applied) == 1, outputs  # exactly one process did the work
    assert await migrate(empty_db) == []


async def test_migrate_again_says_only_that_it_is_up_to_date(empty_db: DatabaseURL, tmp_path: Path) -> None:
    """No driver warning (MariaDB's note on CREATE TABLE IF NOT EXISTS) on every later run."""
    env = {**os.environ, "DATABASE_URL": empty_db.to_url()}
    for expected in (
        f"applied {[m.version for m in migrations(empty_db.kind)]}",
        "applied nothing (up to date)",
    ):
        code, out, err = await run_cli("migrate", cwd=tmp_path, env=env)
        assert code == 0 and err == "", err
        assert out == f"migrated {empty_db.redacted()}: {expected}\n"


async def test_a_database_with_another_tools_schema_migrations_is_refused(scratch_mysql: DatabaseURL) -> None:
    """The original Go service's database: golang-migrate's ledger, whose versions are not ours."""
    conn = await asyncmy.connect(
        host=scratch_mysql.host,
        port=scratch_mysql.port,
        user=scratch_mysql.user,
        password=scratch_mysql.password,
        db=scratch_mysql.database,
        autocommit=True,
    )
    async with conn.cursor() as cur:
        await cur.execute(
            "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)"
        )
        await cur.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    await conn.ensure_closed()
    with pytest.raises(Unavailable) as refused:
        await migrate(scratch_mysql)
    assert refused.value.message == (
        f"database {scratch_mysql.redacted()}: its schema_migrations table is another tool's "
        "(golang-migrate's, as the original Go service made?): give chatservice a database of its own"
    )
